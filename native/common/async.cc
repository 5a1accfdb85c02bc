#include "async.h"

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "pin.h"

namespace grpo {

// ---- Job -------------------------------------------------------------------------------------

Job::~Job() {
  // Normally released on the JS thread already (or abandoned with its env); this covers a job
  // dropped by the binding itself, which happens on the JS thread (an argument error).
  if (env_)
    for (auto& r : refs_) napi_delete_reference(env_, r.ref);
}

void Job::hold(const Napi::Value& v) {
  napi_ref ref;
  if (napi_create_reference(v.Env(), v, 1, &ref) != napi_ok) throw Napi::Error::New(v.Env(), "grpo-kernels: napi_create_reference failed");
  env_ = v.Env();
  refs_.push_back({std::string(), ref});
}

void* Job::pin(const char* name, const Napi::Value& v, napi_typedarray_type* type, size_t* length) {
  Napi::Env env = v.Env();
  Pinned p;
  PinStatus st = pin_typed_array(env, v, &p);
  if (st != PinStatus::Ok)
    throw Napi::TypeError::New(env, std::string("grpo-kernels (native): argument ") + name + " must be " + pin_expectation(st));
  napi_ref ref;
  if (napi_create_reference(env, v, 1, &ref) != napi_ok) throw Napi::Error::New(env, "grpo-kernels: napi_create_reference failed");
  env_ = env;
  refs_.push_back({name, ref});
  pins_.push_back(std::move(p.store));
  *type = p.type;
  *length = p.length;
  return p.data;
}

std::string Job::detached_argument() const {
  for (const auto& r : refs_) {
    if (r.name.empty()) continue;
    napi_value ta, ab;
    bool detached = false;
    if (napi_get_reference_value(env_, r.ref, &ta) != napi_ok || !ta) continue;
    if (napi_get_typedarray_info(env_, ta, nullptr, nullptr, nullptr, &ab, nullptr) != napi_ok) continue;
    bool is_ab = false;
    if (napi_is_arraybuffer(env_, ab, &is_ab) != napi_ok || !is_ab) continue;
    if (napi_is_detached_arraybuffer(env_, ab, &detached) == napi_ok && detached) return r.name;
  }
  return "";
}

void Job::release(napi_env env) {
  for (auto& r : refs_) napi_delete_reference(env, r.ref);
  refs_.clear();
}

namespace {

// ---- one async run -----------------------------------------------------------------------------

// Shared by the JS thread (which created it and settles it) and the driver thread (which runs
// it). The thread-safe function is freed by Node when its env is torn down, at any moment from
// the driver's point of view: its finalizer clears `tsfn_alive` under `mu` first, and the driver
// calls it only under `mu` while that is set.
struct Pending {
  std::unique_ptr<Job> job;
  napi_deferred deferred = nullptr;
  napi_threadsafe_function tsfn = nullptr;
  std::string error;
  std::mutex mu;
  bool tsfn_alive = true;
};
using PendingPtr = std::shared_ptr<Pending>;

void reject_with(napi_env env, napi_deferred d, const std::string& msg) {
  napi_value m, err;
  if (napi_create_string_utf8(env, msg.c_str(), msg.size(), &m) != napi_ok) return;
  if (napi_create_error(env, nullptr, m, &err) != napi_ok) return;
  napi_reject_deferred(env, d, err);
}

// Settles the promise on the JS thread. Never throws: a failure here (the env is shutting
// down) leaves the promise pending, which nobody can observe any more.
void settle(napi_env env, Pending& p, Job& job) {
  try {
    if (!p.error.empty()) {
      reject_with(env, p.deferred, p.error);
      return;
    }
    const std::string gone = job.detached_argument();
    if (!gone.empty()) {
      reject_with(env, p.deferred,
                  "grpo-kernels: argument " + gone +
                      ": its ArrayBuffer was detached (transferred) while the async op ran, so the op's results are not "
                      "where the caller can see them; keep every buffer of an async op attached until its promise settles");
      return;
    }
    Napi::Value v;
    try {
      v = job.result(Napi::Env(env));
    } catch (const Napi::Error& e) {
      napi_reject_deferred(env, p.deferred, e.Value());
      return;
    } catch (const std::exception& e) {
      reject_with(env, p.deferred, e.what());
      return;
    }
    napi_resolve_deferred(env, p.deferred, v);
  } catch (...) {
    // Creating a JS value failed (env terminating); nothing left to tell.
  }
}

// call_js_cb of the thread-safe function: `data` is a heap PendingPtr. env is null when Node
// empties the queue at teardown.
void call_js(napi_env env, napi_value, void*, void* data) {
  std::unique_ptr<PendingPtr> box(static_cast<PendingPtr*>(data));
  Pending& p = **box;
  std::unique_ptr<Job> job = std::move(p.job);
  if (!job) return;
  if (env == nullptr) {
    job->abandon();
    return;
  }
  napi_handle_scope scope;
  bool scoped = napi_open_handle_scope(env, &scope) == napi_ok;
  settle(env, p, *job);
  job->release(env);
  job.reset();
  if (scoped) napi_close_handle_scope(env, scope);
}

// finalize_cb of the thread-safe function: runs on the JS thread before Node frees it, either
// after the last release (normal) or when the env is torn down (the job may still be running).
void tsfn_finalize(napi_env, void* data, void*) {
  std::unique_ptr<PendingPtr> box(static_cast<PendingPtr*>(data));
  std::lock_guard<std::mutex> g((*box)->mu);
  (*box)->tsfn_alive = false;
}

// One driver thread, FIFO: jobs run in submission order, each using the whole compute pool.
// It serves every env (main thread and workers) of the process.
class Driver {
 public:
  void submit(PendingPtr p) {
    {
      std::lock_guard<std::mutex> g(mu_);
      q_.push_back(std::move(p));
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
      PendingPtr p;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return !q_.empty(); });
        p = std::move(q_.front());
        q_.pop_front();
      }
      bool alive;
      {
        std::lock_guard<std::mutex> g(p->mu);
        alive = p->tsfn_alive;
      }
      try {
        if (alive) p->job->execute();  // a job whose env is already gone is not run at all
      } catch (const std::exception& e) {
        p->error = e.what();
        if (p->error.empty()) p->error = "grpo-kernels: native error";
      } catch (...) {
        p->error = "grpo-kernels: unknown native error";
      }
      auto* box = new PendingPtr(p);
      bool queued = false;
      {
        std::lock_guard<std::mutex> g(p->mu);
        if (p->tsfn_alive) {
          napi_status st = napi_call_threadsafe_function(p->tsfn, box, napi_tsfn_nonblocking);
          queued = st == napi_ok;
          // napi_closing: the env is being torn down and the call already gave up our thread
          // slot; otherwise release it so the function closes once the result is delivered.
          if (st != napi_closing) napi_release_threadsafe_function(p->tsfn, napi_tsfn_release);
        }
      }
      if (!queued) {
        // The env is gone (or going): drop the job without touching JS. Its pinned memory and
        // owned copies are freed here; references died with the env.
        delete box;
        if (p->job) p->job->abandon();
        p->job.reset();
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<PendingPtr> q_;
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
  auto p = std::make_shared<Pending>();
  p->job = std::move(job);
  napi_value promise, name;
  if (napi_create_promise(env, &p->deferred, &promise) != napi_ok) throw Napi::Error::New(env, "grpo-kernels: napi_create_promise failed");
  napi_create_string_utf8(env, "grpo-kernels", NAPI_AUTO_LENGTH, &name);
  auto* ctx = new PendingPtr(p);
  // The thread-safe function keeps the event loop alive until the job settles.
  if (napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, ctx, tsfn_finalize, nullptr, call_js, &p->tsfn) != napi_ok) {
    delete ctx;
    // Settle what we created: the promise is dropped unresolved, the job released here.
    throw Napi::Error::New(env, "grpo-kernels: napi_create_threadsafe_function failed");
  }
  driver().submit(std::move(p));
  return Napi::Value(env, promise);
}

void async_init(Napi::Env env) {
  std::string why = pin_selftest(env);
  if (!why.empty())
    throw Napi::Error::New(env, "grpo-kernels: this Node.js version's V8 ArrayBuffer interface differs from the one the addon was built for (" +
                                    why + "); rebuild with `npm rebuild grpo-kernels` or report it with your `node --version`");
}

}  // namespace grpo
