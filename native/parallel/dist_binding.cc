// grpo_dist.node: collectives over Gloo (host typed arrays), for data-parallel training
// (lib/parallel/). A separate addon from grpo_kernels.node so that the kernels addon never links
// libgloo: it loads on machines without it, and only lib/parallel loads this one (its absence there
// is an error that says `apt-get install libgloo-dev` and rebuild).
//
// Every op is op(args, async), like the kernels: the buffers are pinned for the op's lifetime
// (common/pin.h) and the op runs on this addon's own driver thread (common/async.cc; this addon
// has its own copy, so a collective waiting for a peer never holds up a kernel). Collectives of
// one communicator are issued in call order (the driver is FIFO), which is what Gloo needs: all
// ranks must issue the same collectives in the same order. Every op is bounded by the
// communicator's timeout (or the op's own timeoutMs): a dead peer is a socket error at once, a
// hung one a timeout, never a hang.
#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>
#include <napi.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include "../common/async.h"
#include "store_client.h"

namespace grpo {
namespace dist {
namespace {

struct Comm {
  std::shared_ptr<gloo::rendezvous::Context> ctx;
  int rank = 0;
  int size = 1;
  std::chrono::milliseconds timeout{30000};
  std::atomic<bool> closed{false};
  // A collective that failed leaves the pairs in an unknown state (partial frames on the wire):
  // later ops refuse instead of mixing frames with an op the peers abandoned.
  std::atomic<bool> broken{false};
  std::string broken_why;
  std::mutex mu;
};
using CommPtr = std::shared_ptr<Comm>;

bool is_async(const Napi::CallbackInfo& info) { return info.Length() > 1 && info[1].ToBoolean().Value(); }

Napi::Object args_of(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "grpo-kernels dist (native): expected an argument object");
  return info[0].As<Napi::Object>();
}

[[noreturn]] void fail(Napi::Env env, const std::string& name, const std::string& expected) {
  throw Napi::TypeError::New(env, "grpo-kernels dist (native): argument " + name + " must be " + expected);
}

int64_t integer(Napi::Env env, Napi::Object o, const char* name, int64_t lo, int64_t hi) {
  Napi::Value v = o.Get(name);
  if (!v.IsNumber()) fail(env, name, "a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= double(lo) && d <= double(hi)) || double(int64_t(d)) != d) fail(env, name, "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return int64_t(d);
}

std::string string_arg(Napi::Env env, Napi::Object o, const char* name) {
  Napi::Value v = o.Get(name);
  if (!v.IsString()) fail(env, name, "a string");
  return v.As<Napi::String>().Utf8Value();
}

CommPtr comm_of(Napi::Env env, Napi::Object o) {
  Napi::Value v = o.Get("comm");
  if (!v.IsExternal()) fail(env, "comm", "a communicator from init()");
  CommPtr c = *v.As<Napi::External<CommPtr>>().Data();
  if (c->closed) throw Napi::Error::New(env, "grpo-kernels dist: the communicator is closed");
  return c;
}

std::chrono::milliseconds op_timeout(Napi::Env env, Napi::Object o, const Comm& c) {
  if (o.Get("timeoutMs").IsUndefined()) return c.timeout;
  return std::chrono::milliseconds(integer(env, o, "timeoutMs", 1, int64_t(1) << 31));
}

struct Buf {
  void* data = nullptr;
  size_t n = 0;
  napi_typedarray_type type = napi_int8_array;
};

Buf pinned(Job& job, Napi::Env env, Napi::Object o, const char* name) {
  Napi::Value v = o.Get(name);
  if (!v.IsTypedArray()) fail(env, name, "a typed array");
  Buf b;
  b.data = job.pin(name, v, &b.type, &b.n);
  return b;
}

// Runs one collective; a failure marks the communicator broken (see Comm::broken).
template <class F>
void guarded(Comm& c, const char* what, F&& f) {
  if (c.broken) throw std::runtime_error(std::string(what) + ": the communicator failed earlier (" + c.broken_why + "); create a new one");
  try {
    f();
  } catch (const std::exception& e) {
    std::lock_guard<std::mutex> lk(c.mu);
    c.broken_why = e.what();
    c.broken = true;
    throw std::runtime_error(std::string(what) + " failed on rank " + std::to_string(c.rank) + ": " + e.what());
  }
}

template <class T>
void allreduce_typed(Comm& c, T* p, size_t n, const std::string& op, std::chrono::milliseconds timeout) {
  gloo::AllreduceOptions opts(c.ctx);
  opts.setOutput<T>(p, n);
  opts.setTimeout(timeout);
  void (*fn)(void*, const void*, const void*, size_t) = &gloo::sum<T>;
  if (op == "max") fn = &gloo::max<T>;
  if (op == "min") fn = &gloo::min<T>;
  opts.setReduceFunction(fn);
  gloo::allreduce(opts);
  if (op == "avg") {
    // the sum divided once, after the reduction: the result is the same on every rank
    const T inv = T(1) / T(c.size);
    for (size_t i = 0; i < n; ++i) p[i] *= inv;
  }
}

size_t elem_size(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: case napi_uint8_array: case napi_uint8_clamped_array: return 1;
    case napi_int16_array: case napi_uint16_array: return 2;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: return 4;
    default: return 8;
  }
}

// init({rank, size, host, port, prefix, timeoutMs, hostname}, async) -> communicator
Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = args_of(info);
  auto c = std::make_shared<Comm>();
  c->size = int(integer(env, o, "size", 1, 1 << 20));
  c->rank = int(integer(env, o, "rank", 0, c->size - 1));
  const std::string host = string_arg(env, o, "host");
  const int port = int(integer(env, o, "port", 1, 65535));
  const std::string prefix = string_arg(env, o, "prefix");
  const std::string hostname = string_arg(env, o, "hostname");
  c->timeout = std::chrono::milliseconds(integer(env, o, "timeoutMs", 1, int64_t(1) << 31));
  auto job = std::make_unique<Job>();
  job->execute = [c, host, port, prefix, hostname] {
    StoreClient store(host, port, prefix, c->timeout);
    gloo::transport::tcp::attr attr;
    attr.hostname = hostname;
    auto dev = gloo::transport::tcp::CreateDevice(attr);
    auto ctx = std::make_shared<gloo::rendezvous::Context>(c->rank, c->size);
    ctx->setTimeout(c->timeout);
    try {
      ctx->connectFullMesh(store, dev);
    } catch (const std::exception& e) {
      throw std::runtime_error("rank " + std::to_string(c->rank) + " of " + std::to_string(c->size) + ": Gloo rendezvous failed: " + e.what());
    }
    c->ctx = ctx;
  };
  job->result = [c](Napi::Env env) -> Napi::Value {
    return Napi::External<CommPtr>::New(env, new CommPtr(c), [](Napi::Env, CommPtr* p) { delete p; });
  };
  return run_job(env, std::move(job), is_async(info));
}

// allReduce({comm, data, op: 'sum'|'avg'|'max'|'min', timeoutMs?}, async): in place over data
// (Float32Array, Float64Array or Int32Array; 'avg' only for the float kinds).
Napi::Value AllReduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = args_of(info);
  CommPtr c = comm_of(env, o);
  const std::string op = string_arg(env, o, "op");
  if (op != "sum" && op != "avg" && op != "max" && op != "min") fail(env, "op", "'sum', 'avg', 'max' or 'min'");
  auto timeout = op_timeout(env, o, *c);
  auto job = std::make_unique<Job>();
  Buf b = pinned(*job, env, o, "data");
  if (b.type != napi_float32_array && b.type != napi_float64_array && b.type != napi_int32_array)
    fail(env, "data", "a Float32Array, Float64Array or Int32Array");
  if (op == "avg" && b.type == napi_int32_array) fail(env, "op", "'sum', 'max' or 'min' for an Int32Array ('avg' needs a float array)");
  job->execute = [c, b, op, timeout] {
    guarded(*c, "allReduce", [&] {
      if (b.type == napi_float32_array) allreduce_typed(*c, static_cast<float*>(b.data), b.n, op, timeout);
      else if (b.type == napi_float64_array) allreduce_typed(*c, static_cast<double*>(b.data), b.n, op, timeout);
      else allreduce_typed(*c, static_cast<int32_t*>(b.data), b.n, op, timeout);
    });
  };
  job->result = [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
  return run_job(env, std::move(job), is_async(info));
}

// broadcast({comm, data, root, timeoutMs?}, async): root's data into every rank's, in place.
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = args_of(info);
  CommPtr c = comm_of(env, o);
  const int root = int(integer(env, o, "root", 0, c->size - 1));
  auto timeout = op_timeout(env, o, *c);
  auto job = std::make_unique<Job>();
  Buf b = pinned(*job, env, o, "data");
  job->execute = [c, b, root, timeout] {
    guarded(*c, "broadcast", [&] {
      gloo::BroadcastOptions opts(c->ctx);
      const size_t bytes = b.n * elem_size(b.type);
      opts.setOutput<uint8_t>(static_cast<uint8_t*>(b.data), bytes);
      opts.setRoot(root);
      opts.setTimeout(timeout);
      gloo::broadcast(opts);
    });
  };
  job->result = [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
  return run_job(env, std::move(job), is_async(info));
}

// allGather({comm, input, output, timeoutMs?}, async): output = the ranks' inputs in rank order
// (output.length = size · input.length, the same element type).
Napi::Value AllGather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = args_of(info);
  CommPtr c = comm_of(env, o);
  auto timeout = op_timeout(env, o, *c);
  auto job = std::make_unique<Job>();
  Buf in = pinned(*job, env, o, "input");
  Buf out = pinned(*job, env, o, "output");
  if (out.type != in.type) fail(env, "output", "a typed array of input's element type");
  if (out.n != in.n * size_t(c->size)) fail(env, "output", "size × input.length = " + std::to_string(in.n * size_t(c->size)) + " elements");
  if (in.n == 0) fail(env, "input", "a non-empty typed array");
  job->execute = [c, in, out, timeout] {
    guarded(*c, "allGather", [&] {
      gloo::AllgatherOptions opts(c->ctx);
      const size_t es = elem_size(in.type);
      opts.setInput<uint8_t>(static_cast<uint8_t*>(in.data), in.n * es);
      opts.setOutput<uint8_t>(static_cast<uint8_t*>(out.data), out.n * es);
      opts.setTimeout(timeout);
      gloo::allgather(opts);
    });
  };
  job->result = [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
  return run_job(env, std::move(job), is_async(info));
}

// barrier({comm, timeoutMs?}, async)
Napi::Value Barrier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = args_of(info);
  CommPtr c = comm_of(env, o);
  auto timeout = op_timeout(env, o, *c);
  auto job = std::make_unique<Job>();
  job->execute = [c, timeout] {
    guarded(*c, "barrier", [&] {
      gloo::BarrierOptions opts(c->ctx);
      opts.setTimeout(timeout);
      gloo::barrier(opts);
    });
  };
  job->result = [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
  return run_job(env, std::move(job), is_async(info));
}

// close({comm}): later ops refuse; the connections close when the last op holding the
// communicator has finished.
Napi::Value Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = args_of(info);
  Napi::Value v = o.Get("comm");
  if (!v.IsExternal()) fail(env, "comm", "a communicator from init()");
  (*v.As<Napi::External<CommPtr>>().Data())->closed = true;
  return env.Undefined();
}

}  // namespace

Napi::Object InitDist(Napi::Env env, Napi::Object exports) {
  async_init(env);
  exports.Set("init", Napi::Function::New(env, Init, "init"));
  exports.Set("allReduce", Napi::Function::New(env, AllReduce, "allReduce"));
  exports.Set("broadcast", Napi::Function::New(env, Broadcast, "broadcast"));
  exports.Set("allGather", Napi::Function::New(env, AllGather, "allGather"));
  exports.Set("barrier", Napi::Function::New(env, Barrier, "barrier"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("gloo", Napi::Boolean::New(env, true));
  return exports;
}

}  // namespace dist
}  // namespace grpo

static Napi::Object InitDistModule(Napi::Env env, Napi::Object exports) { return grpo::dist::InitDist(env, exports); }
NODE_API_MODULE(grpo_dist, InitDistModule)
