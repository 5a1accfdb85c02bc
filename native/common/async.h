// Async form of every op: the binding builds a Job (a "baton": pointers into the JS buffers it
// keeps referenced, scalars copied out), then either runs it now (the *Sync form) or hands it
// to one driver thread and returns a Promise. The driver runs the job's kernel (which spreads
// over the compute pool) and settles the Promise on the JS thread through a thread-safe
// function. Nothing here touches JS values off the JS thread; errors travel back as strings.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace grpo {

struct Job {
  // Runs off the JS thread (async) or on it (sync). Must not touch N-API. Throw
  // std::exception to report an error.
  std::function<void()> execute;
  // Builds the result on the JS thread after execute() succeeded.
  std::function<Napi::Value(Napi::Env)> result;
  // JS values (typed arrays) the kernel reads or writes; kept alive until the job settles.
  std::vector<Napi::Reference<Napi::Value>> keep;

  void hold(const Napi::Value& v) { keep.emplace_back(Napi::Persistent(v)); }
};

// Runs the job synchronously (returns its result, throws a JS Error on failure) or queues it
// and returns a Promise.
Napi::Value run_job(Napi::Env env, std::unique_ptr<Job> job, bool async);

}  // namespace grpo
