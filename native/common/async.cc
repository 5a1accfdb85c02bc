#include "async.h"

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

namespace grpo {
namespace {

struct Pending {
  std::unique_ptr<Job> job;
  Napi::Promise::Deferred deferred;
  Napi::ThreadSafeFunction tsfn;
  std::string error;
  explicit Pending(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

// One driver thread, FIFO: jobs run in submission order, each using the whole compute pool.
class Driver {
 public:
  void submit(Pending* p) {
    {
      std::lock_guard<std::mutex> g(mu_);
      q_.push_back(p);
      if (!started_) {
        started_ = true;
        std::thread([this] { loop(); }).detach();
      }
    }
    cv_.notify_one();
  }

 private:
  void loop() {
    for (;;) {
      Pending* p;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return !q_.empty(); });
        p = q_.front();
        q_.pop_front();
      }
      try {
        p->job->execute();
      } catch (const std::exception& e) {
        p->error = e.what();
        if (p->error.empty()) p->error = "grpo-kernels: native error";
      } catch (...) {
        p->error = "grpo-kernels: unknown native error";
      }
      Napi::ThreadSafeFunction tsfn = p->tsfn;
      tsfn.BlockingCall(p, [](Napi::Env env, Napi::Function, Pending* done) {
        std::unique_ptr<Pending> own(done);
        Napi::HandleScope scope(env);
        if (!done->error.empty()) {
          done->deferred.Reject(Napi::Error::New(env, done->error).Value());
          return;
        }
        try {
          done->deferred.Resolve(done->job->result(env));
        } catch (const Napi::Error& e) {
          done->deferred.Reject(e.Value());
        } catch (const std::exception& e) {
          done->deferred.Reject(Napi::Error::New(env, e.what()).Value());
        }
      });
      tsfn.Release();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending*> q_;
  bool started_ = false;
};

Driver& driver() {
  static Driver* d = new Driver();  // leaked: the detached thread outlives static destruction
  return *d;
}

}  // namespace

Napi::Value run_job(Napi::Env env, std::unique_ptr<Job> job, bool async) {
  if (!async) {
    try {
      job->execute();
    } catch (const Napi::Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    return job->result(env);
  }
  auto* p = new Pending(env);
  p->job = std::move(job);
  // The thread-safe function keeps the event loop alive until the job settles.
  p->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                          "grpo-kernels", 0, 1);
  Napi::Promise promise = p->deferred.Promise();
  driver().submit(p);
  return promise;
}

}  // namespace grpo
