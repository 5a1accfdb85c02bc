// Async form of every op: the binding builds a Job (a "baton": pointers into the JS buffers it
// pins, copies of the id arrays it indexes with, scalars), then either runs it now (the *Sync
// form) or hands it to one driver thread and returns a Promise. The driver runs the job's kernel
// (which spreads over the compute pool) and settles the Promise on the JS thread through a
// thread-safe function. Nothing here touches JS values off the JS thread; errors travel back as
// strings.
//
// What a job owns, so that nothing JS does during the op can reach the kernel's memory:
// - every typed array it reads or writes is pinned (pin.h): a share of the ArrayBuffer's memory,
//   which stays alive and in place if JS transfers, detaches or drops the buffer meanwhile;
//   SharedArrayBuffer-backed and resizable buffers are refused when the op is called;
// - id arrays the kernel indexes memory with are copied at call time (ArgReader::ids) and checked
//   in the copy, so a caller changing them after the call cannot move the kernel's reads;
// - a buffer detached while the op ran makes the Promise reject (its results went to memory JS
//   no longer sees through it).
// If the JS environment is torn down while a job runs (worker.terminate(), process exit), the
// job finishes on the driver thread and is dropped without touching JS (async.cc).
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace grpo {

class Job {
 public:
  Job() = default;
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;
  ~Job();

  // Runs off the JS thread (async) or on it (sync). Must not touch N-API. Throw
  // std::exception to report an error.
  std::function<void()> execute;
  // Builds the result on the JS thread after execute() succeeded.
  std::function<Napi::Value(Napi::Env)> result;

  // Keeps a JS object alive until the job settles (the model object of a model op).
  void hold(const Napi::Value& v);
  // Pins typed array `v` (argument `name`) for the job's lifetime and returns its first
  // element; throws a TypeError naming the argument if it cannot be pinned (pin.h).
  void* pin(const char* name, const Napi::Value& v, napi_typedarray_type* type, size_t* length);
  // Memory the job owns for its lifetime (copies of id arrays).
  template <class T>
  T* own(size_t n) {
    auto buf = std::shared_ptr<T>(new T[n ? n : 1], std::default_delete<T[]>());
    owned_.push_back(buf);
    return buf.get();
  }

  // On the JS thread after an async run: the name of a pinned argument whose ArrayBuffer was
  // detached while the op ran, or "".
  std::string detached_argument() const;
  // Deletes the job's references (JS thread, env alive).
  void release(napi_env env);
  // The env is gone: forget the references instead of deleting them (they died with it).
  void abandon() { refs_.clear(); }

 private:
  struct Ref {
    std::string name;  // empty for hold()
    napi_ref ref;
  };
  napi_env env_ = nullptr;
  std::vector<Ref> refs_;
  std::vector<std::shared_ptr<void>> pins_;
  std::vector<std::shared_ptr<void>> owned_;
};

// Runs the job synchronously (returns its result, throws a JS Error on failure) or queues it
// and returns a Promise.
Napi::Value run_job(Napi::Env env, std::unique_ptr<Job> job, bool async);

// The addon's load-time checks of the async layer (pin.h's V8 contract); throws on failure.
void async_init(Napi::Env env);

}  // namespace grpo
