#include "threadpool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace grpo {
namespace {

class Pool {
 public:
  Pool() { resize_locked(default_threads()); }
  ~Pool() { stop_workers(); }

  int size() {
    std::lock_guard<std::mutex> g(call_mu_);
    return n_;
  }

  void resize(int n) {
    std::lock_guard<std::mutex> g(call_mu_);
    if (n == n_) return;
    stop_workers();
    resize_locked(n);
  }

  void run(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t min_chunk) {
    if (n <= 0) return;
    // One caller at a time: a sync call on the JS thread waits for an async job's kernel.
    std::lock_guard<std::mutex> g(call_mu_);
    int64_t chunks = std::min<int64_t>(n_, std::max<int64_t>(1, n / std::max<int64_t>(1, min_chunk)));
    if (chunks <= 1) {
      fn(0, n, 0);
      return;
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      job_ = &fn;
      job_n_ = n;
      job_chunks_ = chunks;
      pending_ = static_cast<int>(chunks - 1);
      ++generation_;
    }
    cv_.notify_all();
    run_chunk(0);
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [&] { return pending_ == 0; });
    job_ = nullptr;
  }

 private:
  static int default_threads() {
    if (const char* s = std::getenv("GRPO_NUM_THREADS")) {
      int v = std::atoi(s);
      if (v >= 1 && v <= 1024) return v;
    }
    unsigned hc = std::thread::hardware_concurrency();
    return hc == 0 ? 1 : static_cast<int>(hc);
  }

  void run_chunk(int64_t c) {
    // Chunk c of job_chunks_: an even split of [0, job_n_).
    int64_t b = job_n_ * c / job_chunks_;
    int64_t e = job_n_ * (c + 1) / job_chunks_;
    (*job_)(b, e, static_cast<int>(c));
  }

  // `seen` starts at the generation current when the worker was created: a worker added by
  // resize() after jobs have run must not take the last (finished) job's generation as new work.
  void worker(int id, uint64_t seen) {
    for (;;) {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      bool mine = id < job_chunks_;
      lk.unlock();
      if (!mine) continue;
      run_chunk(id);
      lk.lock();
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }

  void resize_locked(int n) {
    n_ = std::max(1, n);
    stop_ = false;
    const uint64_t gen = generation_;  // no job is in flight: call_mu_ is held or we are constructing
    for (int i = 1; i < n_; ++i) threads_.emplace_back([this, i, gen] { worker(i, gen); });
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

  std::mutex call_mu_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> threads_;
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0, job_chunks_ = 0;
  int pending_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
  int n_ = 1;
};

Pool& pool() {
  // Leaked on purpose: joining threads from a static destructor at process exit can deadlock
  // when Node tears down while a worker is parked.
  static Pool* p = new Pool();
  return *p;
}

}  // namespace

int num_threads() { return pool().size(); }
void set_num_threads(int n) { pool().resize(n); }
void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t min_chunk) {
  pool().run(n, fn, min_chunk);
}

}  // namespace grpo
