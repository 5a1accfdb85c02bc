// The native side of a JS model object (NativeTransformer, NativeHfModel): shared so both get
// the same async rules. The model is owned through a shared_ptr and every in-flight job takes a
// share (share()), so neither dispose() nor the finalizer of a torn-down env (worker.terminate())
// can free it under a running kernel. Async calls keep the JS object alive and count as pending
// until their promise settles; methods that touch the weights synchronously call idle_model()
// and refuse while one is pending, so the driver thread and the JS thread never touch the model
// at once.
#pragma once
#include <napi.h>

#include <atomic>
#include <functional>
#include <memory>

#include "../common/async.h"

namespace grpo {

inline bool is_async(const Napi::CallbackInfo& info) { return info.Length() > 1 && info[1].ToBoolean().Value(); }

template <class M>
class ModelHandle {
 protected:
  M& model(const Napi::Env& env) {
    if (!model_) throw Napi::Error::New(env, "grpo-kernels: this model was disposed");
    return *model_;
  }
  M& idle_model(const Napi::Env& env) {
    M& m = model(env);
    if (pending_->load() != 0) throw Napi::Error::New(env, "grpo-kernels: the model has an async call in flight; await it first");
    return m;
  }
  // The share of the model a job's kernel captures.
  std::shared_ptr<M> share() const { return model_; }
  // Owns `m` and tells V8 about its `bytes` of native memory.
  void adopt(Napi::Env env, std::shared_ptr<M> m, int64_t bytes) {
    model_ = std::move(m);
    external_ = bytes;
    Napi::MemoryManagement::AdjustExternalMemory(env, external_);
  }
  // Drops this object's share (dispose() or the finalizer); a running job keeps its own.
  void release(Napi::Env env) {
    if (!model_) return;
    model_.reset();
    Napi::MemoryManagement::AdjustExternalMemory(env, -external_);
  }

  // Runs `kernel` as a job holding the JS object `info.This()`; async calls count as pending
  // until the job object is destroyed, which happens on the JS thread when the promise settles
  // (resolved or rejected): the count cannot drop while JS still waits.
  Napi::Value run(const Napi::CallbackInfo& info, std::unique_ptr<Job> job, std::function<void()> kernel) {
    const bool async = is_async(info);
    if (!async) {
      idle_model(info.Env());
      job->execute = std::move(kernel);
      return run_job(info.Env(), std::move(job), false);
    }
    job->hold(info.This());
    struct Guard {
      std::shared_ptr<std::atomic<int>> p;
      explicit Guard(std::shared_ptr<std::atomic<int>> q) : p(std::move(q)) { p->fetch_add(1); }
      ~Guard() { p->fetch_sub(1); }
    };
    auto guard = std::make_shared<Guard>(pending_);
    job->execute = [guard, kernel = std::move(kernel)] { kernel(); };
    return run_job(info.Env(), std::move(job), true);
  }

  std::shared_ptr<M> model_;
  std::shared_ptr<std::atomic<int>> pending_ = std::make_shared<std::atomic<int>>(0);

 private:
  int64_t external_ = 0;
};

}  // namespace grpo
