// NCCL collectives over device tensors, for data-parallel training on GPUs. NCCL is not needed to
// build: libnccl.so.2 is opened with dlopen at the first call (from the user's CUDA install:
// NCCL_LIBRARY names it, else the loader's search path: LD_LIBRARY_PATH, /usr/local/cuda/lib64,
// ...), so the addon loads and every other feature works where there is none. Without it, every
// NCCL op throws an error that says so.
//
// Ops run on the addon's CUDA stream (ordered after the kernels that produced the tensor), on the
// async driver thread (or now, *Sync). A collective is bounded like the Gloo ones: the job polls
// the stream and ncclCommGetAsyncError, and past the timeout aborts the communicator
// (ncclCommAbort), so a dead peer is an error, never a hang. The unique id comes from rank 0
// (ncclGetUniqueId) and reaches the others through the rendezvous store (lib/parallel).
#include <napi.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "../common/async.h"
#include "../tensor.h"

#ifdef GRPO_HAVE_CUDA
#include <cuda_runtime.h>
#include <dlfcn.h>

#include "../device/device_ref.h"
#endif

namespace grpo {
namespace {

#ifdef GRPO_HAVE_CUDA

// The NCCL ABI, declared here (no nccl.h at build time): stable since NCCL 2.0; ncclAvg since 2.10.
using ncclComm_t = struct ncclComm*;
struct ncclUniqueId {
  char internal[128];
};
enum ncclResult_t { ncclSuccess = 0, ncclInProgress = 7 };
enum ncclDataType_t { ncclInt32 = 2, ncclFloat16 = 6, ncclFloat32 = 7, ncclFloat64 = 8, ncclBfloat16 = 9 };
enum ncclRedOp_t { ncclSum = 0, ncclMax = 2, ncclMin = 3, ncclAvg = 4 };

struct Nccl {
  void* lib = nullptr;
  std::string error;
  int version = 0;
  ncclResult_t (*GetVersion)(int*) = nullptr;
  ncclResult_t (*GetUniqueId)(ncclUniqueId*) = nullptr;
  ncclResult_t (*CommInitRank)(ncclComm_t*, int, ncclUniqueId, int) = nullptr;
  ncclResult_t (*AllReduce)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t) = nullptr;
  ncclResult_t (*Broadcast)(const void*, void*, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t) = nullptr;
  ncclResult_t (*CommDestroy)(ncclComm_t) = nullptr;
  ncclResult_t (*CommAbort)(ncclComm_t) = nullptr;
  ncclResult_t (*CommGetAsyncError)(ncclComm_t, ncclResult_t*) = nullptr;
  const char* (*GetErrorString)(ncclResult_t) = nullptr;
};

const Nccl& nccl() {
  static Nccl n;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("NCCL_LIBRARY");
    const char* names[] = {env, "libnccl.so.2", "libnccl.so", "/usr/local/cuda/lib64/libnccl.so.2", "/usr/lib/x86_64-linux-gnu/libnccl.so.2"};
    std::string tried;
    for (const char* name : names) {
      if (!name || !*name) continue;
      n.lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (n.lib) break;
      tried += std::string(tried.empty() ? "" : ", ") + name;
    }
    if (!n.lib) {
      n.error = "NCCL was not found (tried " + tried + "): install it (e.g. `apt-get install libnccl2` from NVIDIA's CUDA repository, or `pip install nvidia-nccl-cu12` and NCCL_LIBRARY=/path/to/libnccl.so.2)";
      return;
    }
    auto sym = [&](const char* s) {
      void* p = dlsym(n.lib, s);
      if (!p && n.error.empty()) n.error = std::string("the NCCL library lacks ") + s + " (NCCL >= 2.10 is needed)";
      return p;
    };
    n.GetVersion = reinterpret_cast<decltype(n.GetVersion)>(sym("ncclGetVersion"));
    n.GetUniqueId = reinterpret_cast<decltype(n.GetUniqueId)>(sym("ncclGetUniqueId"));
    n.CommInitRank = reinterpret_cast<decltype(n.CommInitRank)>(sym("ncclCommInitRank"));
    n.AllReduce = reinterpret_cast<decltype(n.AllReduce)>(sym("ncclAllReduce"));
    n.Broadcast = reinterpret_cast<decltype(n.Broadcast)>(sym("ncclBroadcast"));
    n.CommDestroy = reinterpret_cast<decltype(n.CommDestroy)>(sym("ncclCommDestroy"));
    n.CommAbort = reinterpret_cast<decltype(n.CommAbort)>(sym("ncclCommAbort"));
    n.CommGetAsyncError = reinterpret_cast<decltype(n.CommGetAsyncError)>(sym("ncclCommGetAsyncError"));
    n.GetErrorString = reinterpret_cast<decltype(n.GetErrorString)>(sym("ncclGetErrorString"));
    if (n.error.empty() && n.GetVersion(&n.version) != ncclSuccess) n.error = "ncclGetVersion failed";
    if (n.error.empty() && n.version < 21000) n.error = "NCCL " + std::to_string(n.version) + " is too old (ncclAvg needs NCCL >= 2.10)";
  });
  return n;
}

const Nccl& need(Napi::Env env) {
  const Nccl& n = nccl();
  if (!n.error.empty()) throw Napi::Error::New(env, "grpo-kernels (nccl): " + n.error);
  return n;
}

void check(const Nccl& n, ncclResult_t r, const char* what) {
  if (r != ncclSuccess) throw std::runtime_error(std::string(what) + ": " + (n.GetErrorString ? n.GetErrorString(r) : "error " + std::to_string(r)));
}

struct Comm {
  ncclComm_t comm = nullptr;
  int rank = 0, size = 1;
  std::chrono::milliseconds timeout{300000};
  std::atomic<bool> aborted{false};
  ~Comm() {
    if (comm && !aborted) nccl().CommDestroy(comm);
  }
};
using CommPtr = std::shared_ptr<Comm>;

constexpr int kCudaErrorNotReady = 600;  // cudaErrorNotReady (not in the CUDA emulator's subset)

// Waits for the stream, bounded: past the deadline (or on an asynchronous NCCL error, e.g. a
// peer that died) the communicator is aborted, which also unblocks the stream.
void wait_bounded(const Nccl& n, Comm& c, cudaStream_t s, const char* what) {
  const auto deadline = std::chrono::steady_clock::now() + c.timeout;
  for (;;) {
    cudaError_t q = cudaStreamQuery(s);
    if (q == cudaSuccess) return;
    if (static_cast<int>(q) != kCudaErrorNotReady) {
      cudaGetLastError();
      throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(q));
    }
    ncclResult_t ae = ncclSuccess;
    n.CommGetAsyncError(c.comm, &ae);
    const bool late = std::chrono::steady_clock::now() > deadline;
    if ((ae != ncclSuccess && ae != ncclInProgress) || late) {
      n.CommAbort(c.comm);
      c.aborted = true;
      throw std::runtime_error(std::string(what) + " on rank " + std::to_string(c.rank) + ": " +
                               (late ? "timed out after " + std::to_string(c.timeout.count()) + " ms (a peer died or hung); communicator aborted"
                                     : std::string(n.GetErrorString(ae)) + "; communicator aborted"));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

ncclDataType_t nccl_type(Napi::Env env, DType d) {
  switch (d) {
    case DType::F32: return ncclFloat32;
    case DType::BF16: return ncclBfloat16;
    case DType::F16: return ncclFloat16;
    default: throw Napi::TypeError::New(env, "grpo-kernels (nccl): argument tensor must be a float32, bfloat16 or float16 device tensor");
  }
}

CommPtr comm_of(Napi::Env env, Napi::Object o) {
  Napi::Value v = o.Get("comm");
  if (!v.IsExternal()) throw Napi::TypeError::New(env, "grpo-kernels (nccl): argument comm must be a communicator from ncclInit()");
  CommPtr c = *v.As<Napi::External<CommPtr>>().Data();
  if (c->aborted) throw Napi::Error::New(env, "grpo-kernels (nccl): the communicator was aborted after an earlier failure; create a new one");
  return c;
}

// ncclInfo() -> {available, version, error}
Napi::Value NcclInfo(const Napi::CallbackInfo& info) {
  const Nccl& n = nccl();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("available", n.error.empty());
  o.Set("version", n.version);
  o.Set("error", n.error);
  return o;
}

// ncclGetUniqueId() -> Uint8Array(128): rank 0 makes it; the store hands it to the others.
Napi::Value NcclGetUniqueId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Nccl& n = need(env);
  ncclUniqueId id;
  try {
    check(n, n.GetUniqueId(&id), "ncclGetUniqueId");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("grpo-kernels (nccl): ") + e.what());
  }
  auto out = Napi::Uint8Array::New(env, sizeof id.internal);
  std::memcpy(out.Data(), id.internal, sizeof id.internal);
  return out;
}

// ncclInit({id: Uint8Array(128), rank, size, timeoutMs}, async) -> communicator
Napi::Value NcclInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Nccl& n = need(env);
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "grpo-kernels (nccl): expected an argument object");
  Napi::Object o = info[0].As<Napi::Object>();
  Napi::Value idv = o.Get("id");
  if (!idv.IsTypedArray() || idv.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array || idv.As<Napi::Uint8Array>().ElementLength() != 128)
    throw Napi::TypeError::New(env, "grpo-kernels (nccl): argument id must be the Uint8Array(128) of ncclGetUniqueId() on rank 0");
  auto c = std::make_shared<Comm>();
  auto num = [&](const char* k, double lo, double hi) {
    Napi::Value v = o.Get(k);
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= lo && d <= hi) || double(int64_t(d)) != d) throw Napi::TypeError::New(env, std::string("grpo-kernels (nccl): argument ") + k + " must be an integer in range");
    return int64_t(d);
  };
  c->size = int(num("size", 1, 1 << 20));
  c->rank = int(num("rank", 0, c->size - 1));
  c->timeout = std::chrono::milliseconds(num("timeoutMs", 1, double(int64_t(1) << 31)));
  ncclUniqueId id;
  std::memcpy(id.internal, idv.As<Napi::Uint8Array>().Data(), 128);  // copied now: JS may change it later
  auto job = std::make_unique<Job>();
  job->execute = [&n, c, id] { check(n, n.CommInitRank(&c->comm, c->size, id, c->rank), "ncclCommInitRank"); };
  job->result = [c](Napi::Env env) -> Napi::Value {
    return Napi::External<CommPtr>::New(env, new CommPtr(c), [](Napi::Env, CommPtr* p) { delete p; });
  };
  return run_job(env, std::move(job), info.Length() > 1 && info[1].ToBoolean().Value());
}

// ncclAllReduce({comm, tensor, op}, async) and ncclBroadcast({comm, tensor, root}, async): in place.
Napi::Value Collective(const Napi::CallbackInfo& info, bool broadcast) {
  Napi::Env env = info.Env();
  const Nccl& n = need(env);
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "grpo-kernels (nccl): expected an argument object");
  Napi::Object o = info[0].As<Napi::Object>();
  CommPtr c = comm_of(env, o);
  DeviceTensorRef t = device_tensor_ref(env, o.Get("tensor"), "tensor");
  const ncclDataType_t dt = nccl_type(env, t.dtype);
  ncclRedOp_t op = ncclSum;
  int root = 0;
  if (broadcast) {
    Napi::Value r = o.Get("root");
    double d = r.IsNumber() ? r.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0 && d < c->size) || double(int(d)) != d) throw Napi::TypeError::New(env, "grpo-kernels (nccl): argument root must be a rank in [0, size)");
    root = int(d);
  } else {
    std::string s = o.Get("op").IsString() ? o.Get("op").As<Napi::String>().Utf8Value() : "";
    if (s == "sum") op = ncclSum;
    else if (s == "avg") op = ncclAvg;
    else if (s == "max") op = ncclMax;
    else if (s == "min") op = ncclMin;
    else throw Napi::TypeError::New(env, "grpo-kernels (nccl): argument op must be 'sum', 'avg', 'max' or 'min'");
  }
  auto job = std::make_unique<Job>();
  job->execute = [&n, c, t, dt, op, root, broadcast] {
    cudaStream_t s = static_cast<cudaStream_t>(t.stream);
    const size_t count = static_cast<size_t>(t.numel);
    if (broadcast) check(n, n.Broadcast(t.ptr, t.ptr, count, dt, root, c->comm, s), "ncclBroadcast");
    else check(n, n.AllReduce(t.ptr, t.ptr, count, dt, op, c->comm, s), "ncclAllReduce");
    wait_bounded(n, *c, s, broadcast ? "ncclBroadcast" : "ncclAllReduce");
  };
  job->result = [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
  return run_job(env, std::move(job), info.Length() > 1 && info[1].ToBoolean().Value());
}
Napi::Value NcclAllReduce(const Napi::CallbackInfo& info) { return Collective(info, false); }
Napi::Value NcclBroadcast(const Napi::CallbackInfo& info) { return Collective(info, true); }

#else  // no CUDA backend: NCCL has nothing to reduce

Napi::Value NcclInfo(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("available", false);
  o.Set("version", 0);
  o.Set("error", "this build of grpo-kernels has no CUDA backend (NCCL reduces device tensors)");
  return o;
}

#endif

}  // namespace

// Called from binding.cc's export table.
void register_nccl_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("ncclInfo", Napi::Function::New(env, NcclInfo, "ncclInfo"));
#ifdef GRPO_HAVE_CUDA
  exports.Set("ncclGetUniqueId", Napi::Function::New(env, NcclGetUniqueId, "ncclGetUniqueId"));
  exports.Set("ncclInit", Napi::Function::New(env, NcclInit, "ncclInit"));
  exports.Set("ncclAllReduce", Napi::Function::New(env, NcclAllReduce, "ncclAllReduce"));
  exports.Set("ncclBroadcast", Napi::Function::New(env, NcclBroadcast, "ncclBroadcast"));
#endif
}

}  // namespace grpo
