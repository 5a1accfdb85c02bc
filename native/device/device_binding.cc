// Export table of device tensors and the CUDA forms of the ops (lib/device.ts).
//
// A device tensor is a JS External holding a DeviceHandle: a shared_ptr to the device memory
// (DeviceMem frees it with cudaFree when the last owner lets go), its dtype and element count.
// The JS object owns one reference; every in-flight job holds another, so dispose() or the GC
// finalizer during an async op never frees memory a kernel still uses. Device bytes are
// reported to V8 (AdjustExternalMemory) so the GC sees them.
//
// Each <op>Cuda(args, async) reads device tensors where the host op reads typed arrays, checks
// every size (the last line of defence after lib/device.ts), then runs the launcher of
// cuda/<op>.cu on this addon instance's stream: now (sync), or on the async driver thread,
// which waits for the stream, so the Promise resolves when the GPU work is done and the event
// loop never blocks. CUDA failures reject with the CUDA error text.
#include <napi.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "../common/async.h"
#include "../common/loss_args.h"
#include "../common/napi_args.h"
#include "../tensor.h"

#include "device_ref.h"
#ifdef GRPO_HAVE_CUDA
#include "cuda_ops.h"
#include "../../cuda/check.h"
#endif

namespace grpo {

#ifdef GRPO_CUDA_EMU
namespace emu_selftest {
std::string run(const std::string& name);
}
#endif

namespace {

std::atomic<int64_t> g_live_bytes{0};
std::atomic<int64_t> g_live_buffers{0};

#ifdef GRPO_HAVE_CUDA

struct DeviceMem {
  void* ptr = nullptr;
  size_t bytes = 0;
  DeviceMem(const DeviceMem&) = delete;
  DeviceMem& operator=(const DeviceMem&) = delete;
  DeviceMem(size_t n) : bytes(n) {
    cuda::check(cudaMalloc(&ptr, n ? n : 1), "cudaMalloc");
    g_live_bytes += static_cast<int64_t>(n);
    ++g_live_buffers;
  }
  ~DeviceMem() {
    cudaFree(ptr);  // a failure here has no caller to report to; the status is dropped on purpose
    g_live_bytes -= static_cast<int64_t>(bytes);
    --g_live_buffers;
  }
};

struct DeviceHandle {
  std::shared_ptr<DeviceMem> mem;
  DType dtype;
  int64_t numel;
};

// The stream every op of one addon instance runs on. Owned jointly by the instance (deleted
// with its env) and every job enqueued on it, so a worker torn down mid-op does not destroy
// the stream under the driver thread's cudaStreamSynchronize.
struct Stream {
  cudaStream_t s = nullptr;
  ~Stream() {
    if (s) cudaStreamDestroy(s);
  }
};
using StreamPtr = std::shared_ptr<Stream>;

struct DeviceContext {
  StreamPtr stream;
};

StreamPtr stream_ptr(Napi::Env env) {
  auto* c = env.GetInstanceData<DeviceContext>();
  if (!c) {
    cudaStream_t s = nullptr;
    cudaError_t st = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    if (st != cudaSuccess) {
      cudaGetLastError();
      throw Napi::Error::New(env, std::string("grpo-kernels (cuda): cudaStreamCreateWithFlags: ") + cudaGetErrorString(st));
    }
    c = new DeviceContext();
    c->stream = std::make_shared<Stream>();
    c->stream->s = s;
    env.SetInstanceData<DeviceContext>(c);  // deleted with the env
  }
  return c->stream;
}
cudaStream_t stream_of(Napi::Env env) { return stream_ptr(env)->s; }

bool device_present() {
  static int present = -1;
  if (present < 0) {
    int n = 0;
    cudaError_t st = cudaGetDeviceCount(&n);
    if (st != cudaSuccess) cudaGetLastError();
    present = st == cudaSuccess && n > 0;
  }
  return present == 1;
}

DeviceHandle* handle_of(const Napi::Env& env, const Napi::Value& v, const char* name) {
  if (!v.IsExternal()) throw Napi::TypeError::New(env, std::string("grpo-kernels (native): argument ") + name + " must be a device tensor handle");
  auto* h = v.As<Napi::External<DeviceHandle>>().Data();
  if (!h || !h->mem) throw Napi::Error::New(env, std::string("grpo-kernels: device tensor ") + name + " was disposed");
  return h;
}

void account(Napi::Env env, int64_t delta) { Napi::MemoryManagement::AdjustExternalMemory(env, delta); }

// Reads device-tensor arguments of an op; keeps each tensor's memory alive in `keep`.
class DeviceArgs {
 public:
  DeviceArgs(const Napi::CallbackInfo& info, ArgReader& r) : env_(info.Env()), r_(r) { obj_ = info[0].As<Napi::Object>(); }

  void* tensor(const char* name, DType dt, int64_t count, bool optional = false) {
    Napi::Value v = obj_.Get(name);
    if (v.IsUndefined() || v.IsNull()) {
      if (optional) return nullptr;
      r_.fail(name, "a device tensor");
    }
    DeviceHandle* h = handle_of(env_, v, name);
    if (h->dtype != dt) r_.fail(name, "a device tensor of another dtype");
    if (h->numel != count) r_.fail(name, "a device tensor of another length");
    keep.push_back(h->mem);
    return h->mem->ptr;
  }
  template <class T> T* f32(const char* name, int64_t n, bool opt = false) { return static_cast<T*>(tensor(name, DType::F32, n, opt)); }

  // A float tensor of any float dtype (f32, bf16, f16).
  TensorView float_tensor(const char* name, int64_t count) {
    Napi::Value v = obj_.Get(name);
    DeviceHandle* h = handle_of(env_, v, name);
    if (h->dtype != DType::F32 && h->dtype != DType::BF16 && h->dtype != DType::F16) r_.fail(name, "a float32, bfloat16 or float16 device tensor");
    if (h->numel != count) r_.fail(name, "a device tensor of another length");
    keep.push_back(h->mem);
    TensorView t;
    t.data = h->mem->ptr;
    t.dtype = h->dtype;
    t.device = Device::CUDA;
    t.numel = count;
    return t;
  }

  std::vector<std::shared_ptr<DeviceMem>> keep;

 private:
  Napi::Env env_;
  ArgReader& r_;
  Napi::Object obj_;
};

bool is_async(const Napi::CallbackInfo& info) { return info.Length() > 1 && info[1].ToBoolean().Value(); }

// Runs `work` (which enqueues on the stream) then waits for the stream: sync or on the driver.
template <class W, class R>
Napi::Value run_on_stream(const Napi::CallbackInfo& info, std::unique_ptr<Job> job, std::vector<std::shared_ptr<DeviceMem>> keep, W work, R result) {
  StreamPtr sp = stream_ptr(info.Env());
  job->execute = [sp, work, keep]() {
    work(sp->s);
    cuda::check(cudaStreamSynchronize(sp->s), "cudaStreamSynchronize");
  };
  job->result = result;
  return run_job(info.Env(), std::move(job), is_async(info));
}

Napi::Value Undefined(Napi::Env env) { return env.Undefined(); }

// ---- device tensors ------------------------------------------------------------------------

// deviceAlloc(dtypeCode, numel) -> handle
Napi::Value DeviceAlloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!device_present()) throw Napi::Error::New(env, "grpo-kernels: no CUDA device is available (cudaAvailable() is false)");
  int dt = info[0].As<Napi::Number>().Int32Value();
  double n = info[1].As<Napi::Number>().DoubleValue();
  if (dt < 0 || dt > 5 || !(n >= 0) || n > 9.0e15) throw Napi::RangeError::New(env, "grpo-kernels (native): bad device tensor dtype or size");
  auto* h = new DeviceHandle{nullptr, static_cast<DType>(dt), static_cast<int64_t>(n)};
  size_t bytes = static_cast<size_t>(h->numel) * dtype_size(h->dtype);
  try {
    h->mem = std::make_shared<DeviceMem>(bytes);
  } catch (const std::exception& e) {
    delete h;
    throw Napi::Error::New(env, e.what());
  }
  account(env, static_cast<int64_t>(bytes));
  return Napi::External<DeviceHandle>::New(env, h, [](Napi::Env env, DeviceHandle* h) {
    if (h->mem) account(env, -static_cast<int64_t>(h->mem->bytes));
    delete h;  // frees the memory unless a job still holds it
  });
}

// deviceFree(handle): idempotent.
Napi::Value DeviceFree(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsExternal()) throw Napi::TypeError::New(env, "grpo-kernels (native): expected a device tensor handle");
  auto* h = info[0].As<Napi::External<DeviceHandle>>().Data();
  if (h->mem) {
    account(env, -static_cast<int64_t>(h->mem->bytes));
    h->mem.reset();
  }
  return env.Undefined();
}

// deviceCopy(handle, typedArray, toDevice, async): upload (toDevice) or download; the typed
// array's byte length must equal the tensor's.
Napi::Value DeviceCopy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DeviceHandle* h = handle_of(env, info[0], "tensor");
  if (!info[1].IsTypedArray()) throw Napi::TypeError::New(env, "grpo-kernels (native): expected a typed array");
  bool to_device = info[2].ToBoolean().Value();
  size_t bytes = h->mem->bytes;
  auto job = std::make_unique<Job>();
  napi_typedarray_type type;
  size_t length;
  auto* host = static_cast<uint8_t*>(job->pin("data", info[1], &type, &length));  // pinned until the copy settles
  if (info[1].As<Napi::TypedArray>().ByteLength() != bytes)
    throw Napi::RangeError::New(env, "grpo-kernels (native): typed array byte length differs from the device tensor's");
  std::shared_ptr<DeviceMem> mem = h->mem;
  StreamPtr sp = stream_ptr(env);
  job->execute = [mem, host, bytes, to_device, sp]() {
    cudaStream_t s = sp->s;
    if (bytes == 0) return;
    if (to_device)
      cuda::check(cudaMemcpyAsync(mem->ptr, host, bytes, cudaMemcpyHostToDevice, s), "cudaMemcpyAsync (upload)");
    else
      cuda::check(cudaMemcpyAsync(host, mem->ptr, bytes, cudaMemcpyDeviceToHost, s), "cudaMemcpyAsync (download)");
    cuda::check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
  };
  job->result = [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
  bool async = info.Length() > 3 && info[3].ToBoolean().Value();
  return run_job(env, std::move(job), async);
}

// ---- ops -------------------------------------------------------------------------------------

constexpr int64_t kMaxDim = int64_t(1) << 40;

Napi::Value KlPenaltyCuda(const Napi::CallbackInfo& info) {
  auto job = std::make_unique<Job>();
  ArgReader r(info, *job);
  DeviceArgs d(info, r);
  auto a = std::make_shared<KlPenaltyArgs>();
  a->n = r.integer("n", 0, kMaxDim);
  a->logp = d.f32<const float>("logp", a->n);
  a->ref_logp = d.f32<const float>("refLogp", a->n);
  a->estimator = static_cast<KlEstimator>(r.integer("estimator", 0, kNumKlEstimators - 1));
  a->clamp_log_ratio = r.flag("clampLogRatio", true);
  a->kl = d.f32<float>("kl", a->n);
  a->grad = d.f32<float>("grad", a->n, true);
  return run_on_stream(info, std::move(job), d.keep, [a](cudaStream_t s) { kl_penalty_cuda(*a, s); }, Undefined);
}

Napi::Value GroupAdvantagesCuda(const Napi::CallbackInfo& info) {
  auto job = std::make_unique<Job>();
  ArgReader r(info, *job);
  DeviceArgs d(info, r);
  auto a = std::make_shared<GroupAdvantagesArgs>();
  a->S = r.integer("S", 0, kMaxDim);
  a->K = r.integer("K", 1, 1 << 20);
  a->num_groups = r.integer("numGroups", 0, kMaxDim);
  a->rewards = d.f32<const float>("rewards", r.product("K", a->S, a->K));
  a->weights = d.f32<const float>("weights", a->K);
  a->group = static_cast<const int32_t*>(d.tensor("group", DType::I32, a->S));  // ids out of range: NaN advantage (kernel)
  a->estimator = static_cast<AdvEstimator>(r.integer("estimator", 0, kNumAdvEstimators - 1));
  a->scale = static_cast<AdvScale>(r.integer("scale", 0, 2));
  a->eps = r.num("eps");
  a->unbiased = r.flag("unbiased", true);
  a->normalize = r.flag("normalize", false);
  a->lengths = d.f32<const float>("lengths", a->S, a->estimator != AdvEstimator::Opo);
  a->baselines = d.f32<const float>("baselines", a->S, a->estimator != AdvEstimator::Remax);
  a->advantages = d.f32<float>("advantages", a->S);
  a->reward = d.f32<float>("reward", a->S);
  a->group_mean = d.f32<float>("groupMean", a->num_groups);
  a->group_std = d.f32<float>("groupStd", a->num_groups);
  return run_on_stream(info, std::move(job), d.keep, [a](cudaStream_t s) { group_advantages_cuda(*a, s); },
                       [a](Napi::Env env) -> Napi::Value {
                         Napi::Object o = Napi::Object::New(env);
                         o.Set("zeroStdFraction", a->zero_std_fraction);
                         o.Set("numNoReward", static_cast<double>(a->num_no_reward));
                         return o;
                       });
}

Napi::Value KlFullCuda(const Napi::CallbackInfo& info) {
  auto job = std::make_unique<Job>();
  ArgReader r(info, *job);
  DeviceArgs d(info, r);
  auto a = std::make_shared<KlFullArgs>();
  a->N = r.integer("N", 0, kMaxDim);
  a->V = r.integer("V", 1, kMaxDim);
  const int64_t NV = r.product("V", a->N, a->V);
  TensorView z = d.float_tensor("logits", NV), zr = d.float_tensor("refLogits", NV);
  if (zr.dtype != z.dtype) r.fail("refLogits", "a device tensor of the logits' dtype");
  a->logits = z.data;
  a->ref_logits = zr.data;
  a->dtype = z.dtype;
  a->temperature = static_cast<float>(r.num("temperature"));
  if (!(a->temperature > 0) || !std::isfinite(a->temperature)) r.fail("temperature", "a finite number > 0");
  a->coef = d.f32<const float>("coef", a->N, true);
  a->kl = d.f32<float>("kl", a->N);
  if (r.has("grad")) {
    TensorView g = d.float_tensor("grad", NV);
    if (g.dtype != z.dtype) r.fail("grad", "a device tensor of the logits' dtype");
    a->grad = g.data;
  }
  a->accumulate = r.flag("accumulate", false);
  // gradInPlace: the gradient over the policy logits (one tensor, kept once), as the host klFull
  if (r.flag("gradInPlace", false)) {
    if (a->grad || a->accumulate) r.fail("gradInPlace", "given without grad and accumulate");
    a->grad = const_cast<void*>(z.data);
  }
  // internal (cuda.grpoLossFromLogits, klEstimator 'full', in place): the fused policy term
  a->policy_grad = d.f32<const float>("policyGrad", a->N, true);
  a->policy_grad_h = d.f32<const float>("policyGradEntropy", a->N, true);
  if (a->policy_grad) {
    a->targets = static_cast<const int32_t*>(d.tensor("targets", DType::I32, a->N));  // out of range: no one-hot term
    if (!a->grad || a->accumulate) r.fail("policyGrad", "given only with grad and without accumulate");
  }
  if (a->policy_grad_h) {
    if (!a->policy_grad) r.fail("policyGradEntropy", "given only with policyGrad");
    a->entropy = d.f32<const float>("entropy", a->N);
  }
  return run_on_stream(info, std::move(job), d.keep, [a](cudaStream_t s) { kl_full_cuda(*a, s); }, Undefined);
}

Napi::Value LogprobsCuda(const Napi::CallbackInfo& info) {
  auto job = std::make_unique<Job>();
  ArgReader r(info, *job);
  DeviceArgs d(info, r);
  auto a = std::make_shared<LogprobsArgs>();
  a->N = r.integer("N", 0, kMaxDim);
  a->V = r.integer("V", 1, kMaxDim);
  a->logits = d.float_tensor("logits", r.product("V", a->N, a->V));
  a->targets = static_cast<const int32_t*>(d.tensor("targets", DType::I32, a->N));  // out of range: NaN (kernel)
  a->temperature = static_cast<float>(r.num("temperature"));
  a->logp = d.f32<float>("logp", a->N);
  a->entropy = d.f32<float>("entropy", a->N, true);
  return run_on_stream(info, std::move(job), d.keep, [a](cudaStream_t s) { logprobs_cuda(*a, s); }, Undefined);
}

Napi::Value GrpoLossCuda(const Napi::CallbackInfo& info) {
  auto job = std::make_unique<Job>();
  ArgReader r(info, *job);
  DeviceArgs d(info, r);
  auto a = std::make_shared<GrpoLossArgs>();
  a->S = r.integer("S", 0, kMaxDim);
  a->T = r.integer("T", 0, kMaxDim);
  int64_t N = r.product("T", a->S, a->T);
  a->logp = d.f32<const float>("logp", N);
  a->old_logp = d.f32<const float>("oldLogp", N, true);
  a->ref_logp = d.f32<const float>("refLogp", N, true);
  a->advantages = d.f32<const float>("advantages", a->S);
  a->mask = static_cast<const uint8_t*>(d.tensor("mask", DType::U8, N));
  a->entropy = d.f32<const float>("entropy", N, true);
  a->rollout_logp = d.f32<const float>("rolloutLogp", N, true);
  read_options(r, a->opt);
  if (a->opt.beta != 0 && !a->ref_logp) r.fail("refLogp", "given when beta != 0");
  if (a->opt.top_entropy_quantile < 1 && !a->entropy) r.fail("entropy", "given when topEntropyQuantile < 1");
  if (a->opt.rollout_is != RolloutIs::Off && !a->rollout_logp) r.fail("rolloutLogp", "given when rolloutIsMode is set");
  a->grad_logp = d.f32<float>("gradLogp", N, true);
  a->per_token_loss = d.f32<float>("perTokenLoss", N, true);
  a->grad_entropy = d.f32<float>("gradEntropy", N, true);
  if (a->opt.entropy_coef != 0 && !a->entropy) r.fail("entropy", "given when entropyCoef != 0");
  return run_on_stream(info, std::move(job), d.keep, [a](cudaStream_t s) { grpo_loss_cuda(*a, s); },
                       [a](Napi::Env env) -> Napi::Value { return metrics_to_js(env, a->metrics); });
}

Napi::Value GrpoLossFromLogitsCuda(const Napi::CallbackInfo& info) {
  auto job = std::make_unique<Job>();
  ArgReader r(info, *job);
  DeviceArgs d(info, r);
  auto a = std::make_shared<GrpoLossFromLogitsArgs>();
  a->S = r.integer("S", 0, kMaxDim);
  a->T = r.integer("T", 0, kMaxDim);
  a->V = r.integer("V", 1, kMaxDim);
  int64_t N = r.product("T", a->S, a->T);
  int64_t NV = r.product("V", N, a->V);
  a->logits = d.float_tensor("logits", NV);
  a->targets = static_cast<const int32_t*>(d.tensor("targets", DType::I32, N));
  a->temperature = static_cast<float>(r.num("temperature"));
  a->old_logp = d.f32<const float>("oldLogp", N, true);
  a->ref_logp = d.f32<const float>("refLogp", N, true);
  a->advantages = d.f32<const float>("advantages", a->S);
  a->mask = static_cast<const uint8_t*>(d.tensor("mask", DType::U8, N));
  a->rollout_logp = d.f32<const float>("rolloutLogp", N, true);
  read_options(r, a->opt);
  if (a->opt.beta != 0 && !a->ref_logp) r.fail("refLogp", "given when beta != 0");
  if (a->opt.rollout_is != RolloutIs::Off && !a->rollout_logp) r.fail("rolloutLogp", "given when rolloutIsMode is set");
  a->grad_mode = static_cast<GradMode>(r.integer("gradMode", 0, 2));
  if (a->grad_mode == GradMode::Separate) {
    a->grad_logits = d.float_tensor("gradLogits", NV);
    if (a->grad_logits.dtype != a->logits.dtype) r.fail("gradLogits", "of the same dtype as logits");
  } else if (a->grad_mode == GradMode::InPlace) {
    a->grad_logits = a->logits;
  }
  a->logp = d.f32<float>("logp", N);
  a->entropy = d.f32<float>("entropy", N);
  a->grad_logp = d.f32<float>("gradLogp", N, true);
  return run_on_stream(info, std::move(job), d.keep, [a](cudaStream_t s) { grpo_loss_from_logits_cuda(*a, s); },
                       [a](Napi::Env env) -> Napi::Value { return metrics_to_js(env, a->metrics); });
}

Napi::Value GrpoLossFromHiddenCuda(const Napi::CallbackInfo& info) {
  auto job = std::make_unique<Job>();
  ArgReader r(info, *job);
  DeviceArgs d(info, r);
  auto a = std::make_shared<GrpoLossFromHiddenArgs>();
  a->S = r.integer("S", 0, kMaxDim);
  a->T = r.integer("T", 0, kMaxDim);
  a->V = r.integer("V", 1, kMaxDim);
  a->D = r.integer("D", 1, kMaxDim);
  int64_t N = r.product("T", a->S, a->T);
  a->hidden = d.float_tensor("hidden", r.product("D", N, a->D));
  a->weight = d.float_tensor("weight", r.product("D", a->V, a->D));
  a->chunk = r.integer("chunk", 1, kMaxDim);
  r.product("chunk", a->chunk < N ? a->chunk : N, a->V);
  a->targets = static_cast<const int32_t*>(d.tensor("targets", DType::I32, N));  // out of range: NaN (kernel)
  a->temperature = static_cast<float>(r.num("temperature"));
  a->old_logp = d.f32<const float>("oldLogp", N, true);
  a->ref_logp = d.f32<const float>("refLogp", N, true);
  a->advantages = d.f32<const float>("advantages", a->S);
  a->mask = static_cast<const uint8_t*>(d.tensor("mask", DType::U8, N));
  a->rollout_logp = d.f32<const float>("rolloutLogp", N, true);
  read_options(r, a->opt);
  if (a->opt.beta != 0 && !a->ref_logp) r.fail("refLogp", "given when beta != 0");
  if (a->opt.rollout_is != RolloutIs::Off && !a->rollout_logp) r.fail("rolloutLogp", "given when rolloutIsMode is set");
  a->grad_hidden = d.f32<float>("gradHidden", N * a->D, true);
  a->grad_weight = d.f32<float>("gradWeight", a->V * a->D, true);
  if (a->grad_hidden && (a->grad_hidden == a->hidden.data || a->grad_hidden == a->weight.data || a->grad_hidden == a->grad_weight))
    r.fail("gradHidden", "a device tensor apart from hidden, weight and gradWeight");
  if (a->grad_weight && (a->grad_weight == a->hidden.data || a->grad_weight == a->weight.data))
    r.fail("gradWeight", "a device tensor apart from hidden and weight");
  a->logp = d.f32<float>("logp", N);
  a->entropy = d.f32<float>("entropy", N);
  a->grad_logp = d.f32<float>("gradLogp", N, true);
  return run_on_stream(info, std::move(job), d.keep, [a](cudaStream_t s) { grpo_loss_from_hidden_cuda(*a, s); },
                       [a](Napi::Env env) -> Napi::Value { return metrics_to_js(env, a->metrics); });
}

Napi::Value SampleCuda(const Napi::CallbackInfo& info) {
  auto job = std::make_unique<Job>();
  ArgReader r(info, *job);
  DeviceArgs d(info, r);
  auto a = std::make_shared<SampleArgs>();
  a->R = r.integer("R", 0, kMaxDim);
  a->V = r.integer("V", 1, 0x7fffffffLL);
  a->logits = d.float_tensor("logits", r.product("V", a->R, a->V));
  a->temperature = d.f32<const float>("temperature", a->R);
  a->top_k = static_cast<const int32_t*>(d.tensor("topK", DType::I32, a->R));
  a->top_p = d.f32<const float>("topP", a->R);
  a->min_p = d.f32<const float>("minP", a->R);
  a->seed_lo = static_cast<uint32_t>(r.integer("seedLo", 0, 0xffffffffLL));
  a->seed_hi = static_cast<uint32_t>(r.integer("seedHi", 0, 0xffffffffLL));
  a->step = static_cast<uint32_t>(r.integer("step", 0, 0xffffffffLL));
  a->row_ids = static_cast<const uint32_t*>(d.tensor("rowIds", DType::I32, a->R, true));
  a->tokens = static_cast<int32_t*>(d.tensor("tokens", DType::I32, a->R));
  a->logp = d.f32<float>("logp", a->R);
  a->trunc_logp = d.f32<float>("truncLogp", a->R, true);
  return run_on_stream(info, std::move(job), d.keep, [a](cudaStream_t s) { sample_cuda(*a, s); }, Undefined);
}

// ---- timing (bench/gpu): events on the addon's stream --------------------------------------

// cudaEventRecordNow() -> an event recorded on the stream now (freed by the GC).
Napi::Value EventRecordNow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaEvent_t ev = nullptr;
  try {
    cuda::check(cudaEventCreate(&ev), "cudaEventCreate");
    cuda::check(cudaEventRecord(ev, stream_of(env)), "cudaEventRecord");
  } catch (const std::exception& e) {
    if (ev) cudaEventDestroy(ev);
    throw Napi::Error::New(env, e.what());
  }
  auto* box = new cudaEvent_t(ev);
  return Napi::External<cudaEvent_t>::New(env, box, [](Napi::Env, cudaEvent_t* b) {
    cudaEventDestroy(*b);
    delete b;
  });
}

// cudaEventElapsed(a, b) -> milliseconds between two recorded events (waits for b).
Napi::Value EventElapsed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaEvent_t a = *info[0].As<Napi::External<cudaEvent_t>>().Data(), b = *info[1].As<Napi::External<cudaEvent_t>>().Data();
  float ms = 0;
  try {
    cuda::check(cudaEventSynchronize(b), "cudaEventSynchronize");
    cuda::check(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  return Napi::Number::New(env, ms);
}

// deviceCopyD2D(dst, src): a device-to-device copy of src's bytes on the stream, waited for
// (the bandwidth yardstick of bench/gpu).
Napi::Value DeviceCopyD2D(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DeviceHandle* d = handle_of(env, info[0], "dst");
  DeviceHandle* s = handle_of(env, info[1], "src");
  if (d->mem->bytes != s->mem->bytes) throw Napi::RangeError::New(env, "grpo-kernels (native): deviceCopyD2D needs equal sizes");
  try {
    cudaStream_t st = stream_of(env);
    cuda::check(cudaMemcpyAsync(d->mem->ptr, s->mem->ptr, s->mem->bytes, cudaMemcpyDeviceToDevice, st), "cudaMemcpyAsync (D2D)");
    cuda::check(cudaStreamSynchronize(st), "cudaStreamSynchronize");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  return env.Undefined();
}

#endif  // GRPO_HAVE_CUDA

Napi::Value CudaAvailable(const Napi::CallbackInfo& info) {
#ifdef GRPO_HAVE_CUDA
  return Napi::Boolean::New(info.Env(), device_present());
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

Napi::Value DeviceMemory(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("liveBytes", static_cast<double>(g_live_bytes.load()));
  o.Set("liveBuffers", static_cast<double>(g_live_buffers.load()));
#ifdef GRPO_CUDA_EMU
  o.Set("emulatedAllocatorBytes", static_cast<double>(grpo_emu::live_bytes()));
#endif
  return o;
}

#ifdef GRPO_CUDA_EMU
// emuSelfTest(name) -> "" when it passed, else what went wrong.
Napi::Value EmuSelfTest(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), emu_selftest::run(info[0].As<Napi::String>().Utf8Value()));
}
// emuSetOrder(order, seed): 0 forward, 1 reverse, 2 shuffled thread order between barriers.
Napi::Value EmuSetOrder(const Napi::CallbackInfo& info) {
  grpo_emu::set_order(info[0].As<Napi::Number>().Int32Value(), info.Length() > 1 ? info[1].As<Napi::Number>().Uint32Value() : 0);
  return info.Env().Undefined();
}
// emuFailNextLaunch(code): the next kernel launch fails with that cudaError_t (error paths).
Napi::Value EmuFailNextLaunch(const Napi::CallbackInfo& info) {
  grpo_emu::fail_next_launch(static_cast<cudaError_t>(info[0].As<Napi::Number>().Int32Value()));
  return info.Env().Undefined();
}
Napi::Value EmuLaunches(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(grpo_emu::launches())); }
#endif

}  // namespace

#ifdef GRPO_HAVE_CUDA
// device_ref.h: for NCCL collectives over device tensors (native/parallel/nccl.cc).
DeviceTensorRef device_tensor_ref(Napi::Env env, const Napi::Value& v, const char* name) {
  DeviceHandle* h = handle_of(env, v, name);
  DeviceTensorRef r;
  r.mem = h->mem;
  r.ptr = h->mem->ptr;
  r.dtype = h->dtype;
  r.numel = h->numel;
  StreamPtr s = stream_ptr(env);
  r.stream = s->s;
  r.stream_keep = s;
  return r;
}
#endif

void register_device_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaAvailable", Napi::Function::New(env, CudaAvailable, "cudaAvailable"));
  exports.Set("deviceMemory", Napi::Function::New(env, DeviceMemory, "deviceMemory"));
#ifdef GRPO_HAVE_CUDA
  exports.Set("deviceAlloc", Napi::Function::New(env, DeviceAlloc, "deviceAlloc"));
  exports.Set("deviceFree", Napi::Function::New(env, DeviceFree, "deviceFree"));
  exports.Set("deviceCopy", Napi::Function::New(env, DeviceCopy, "deviceCopy"));
  exports.Set("klPenaltyCuda", Napi::Function::New(env, KlPenaltyCuda, "klPenaltyCuda"));
  exports.Set("klFullCuda", Napi::Function::New(env, KlFullCuda, "klFullCuda"));
  exports.Set("groupAdvantagesCuda", Napi::Function::New(env, GroupAdvantagesCuda, "groupAdvantagesCuda"));
  exports.Set("logprobsCuda", Napi::Function::New(env, LogprobsCuda, "logprobsCuda"));
  exports.Set("grpoLossFromLogitsCuda", Napi::Function::New(env, GrpoLossFromLogitsCuda, "grpoLossFromLogitsCuda"));
  exports.Set("grpoLossFromHiddenCuda", Napi::Function::New(env, GrpoLossFromHiddenCuda, "grpoLossFromHiddenCuda"));
  exports.Set("grpoLossCuda", Napi::Function::New(env, GrpoLossCuda, "grpoLossCuda"));
  exports.Set("sampleCuda", Napi::Function::New(env, SampleCuda, "sampleCuda"));
  exports.Set("cudaEventRecordNow", Napi::Function::New(env, EventRecordNow, "cudaEventRecordNow"));
  exports.Set("cudaEventElapsed", Napi::Function::New(env, EventElapsed, "cudaEventElapsed"));
  exports.Set("deviceCopyD2D", Napi::Function::New(env, DeviceCopyD2D, "deviceCopyD2D"));
#endif
#ifdef GRPO_CUDA_EMU
  exports.Set("emuSelfTest", Napi::Function::New(env, EmuSelfTest, "emuSelfTest"));
  exports.Set("emuSetOrder", Napi::Function::New(env, EmuSetOrder, "emuSetOrder"));
  exports.Set("emuLaunches", Napi::Function::New(env, EmuLaunches, "emuLaunches"));
  exports.Set("emuFailNextLaunch", Napi::Function::New(env, EmuFailNextLaunch, "emuFailNextLaunch"));
#endif
}

}  // namespace grpo
