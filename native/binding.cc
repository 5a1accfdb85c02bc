// The N-API binding: a table of ops. Each entry reads its argument object into the op's args
// struct (pointers into the caller's typed arrays, scalars), then runs the CPU kernel now
// (sync) or on the driver thread (async, returns a Promise). No math lives here.
//
// Every op is called as op(args, async). Outputs are typed arrays the TS layer allocated and
// passed in (so callers can reuse buffers); scalar results come back as an object.
#include <napi.h>

#include <cmath>
#include <memory>

#include "common/async.h"
#include "common/loss_args.h"
#include "common/napi_args.h"
#include "common/philox.h"
#include "common/threadpool.h"
#include "model/matmul.h"
#include "ops/group_advantages.h"
#include "ops/kl_full.h"
#include "ops/grpo_loss.h"
#include "ops/grpo_loss_from_hidden.h"
#include "ops/grpo_loss_from_logits.h"
#include "ops/kl_penalty.h"
#include "ops/logprobs.h"
#include "ops/sample.h"

namespace grpo {

// native/common/backend_info.cc
Napi::Object cuda_info(Napi::Env env);
const char* cpu_isa();
// Further export tables, each owned by its feature: the built-in transformer
// (native/model/model_binding.cc) and device tensors + CUDA dispatch (native/device/).
void register_model_ops(Napi::Env env, Napi::Object exports);
void register_device_ops(Napi::Env env, Napi::Object exports);
// native/common/buffer_pool.cc: reusable memory for large default outputs.
void register_pool_ops(Napi::Env env, Napi::Object exports);
// native/parallel/nccl.cc: NCCL collectives over device tensors (libnccl opened at run time).
void register_nccl_ops(Napi::Env env, Napi::Object exports);

namespace {

constexpr int64_t kMaxDim = int64_t(1) << 40;

bool is_async(const Napi::CallbackInfo& info) { return info.Length() > 1 && info[1].ToBoolean().Value(); }

Napi::Value Logprobs(const Napi::CallbackInfo& info) {
  auto job = std::make_unique<Job>();
  ArgReader r(info, *job);
  auto a = std::make_shared<LogprobsArgs>();
  a->N = r.integer("N", 0, kMaxDim);
  a->V = r.integer("V", 1, kMaxDim);
  a->logits = r.float_tensor("logits", r.product("V", a->N, a->V));
  // Target ids are array offsets into each row: copied and checked here (napi_args.h ids()).
  a->targets = r.ids<int32_t>("targets", napi_int32_array, a->N, 0, a->V, "ids in [0, V)");
  a->temperature = static_cast<float>(r.num("temperature"));
  if (!(a->temperature > 0) || !std::isfinite(a->temperature)) r.fail("temperature", "a finite number > 0");
  a->logp = r.typed<float>("logp", napi_float32_array, a->N);
  a->entropy = r.typed<float>("entropy", napi_float32_array, a->N, true);
  job->execute = [a] { logprobs_cpu(*a); };
  job->result = [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
  return run_job(info.Env(), std::move(job), is_async(info));
}

Napi::Value GroupAdvantages(const Napi::CallbackInfo& info) {
  auto job = std::make_unique<Job>();
  ArgReader r(info, *job);
  auto a = std::make_shared<GroupAdvantagesArgs>();
  a->S = r.integer("S", 0, kMaxDim);
  a->K = r.integer("K", 1, 1 << 20);
  a->num_groups = r.integer("numGroups", 0, kMaxDim);
  a->rewards = r.typed<float>("rewards", napi_float32_array, r.product("K", a->S, a->K));
  a->weights = r.typed<float>("weights", napi_float32_array, a->K);
  // Contiguous groups of a fixed size need no index array (groupSize); otherwise dense indices,
  // which the kernel reads as array offsets: copied and checked here, not only in TS.
  a->group_size = r.has("groupSize") ? r.integer("groupSize", 1, kMaxDim) : 0;
  if (a->group_size > 0 && (a->S % a->group_size != 0 || a->num_groups != a->S / a->group_size))
    r.fail("groupSize", "a divisor of S with numGroups = S / groupSize");
  a->group = a->group_size > 0 ? nullptr : r.ids<int32_t>("group", napi_int32_array, a->S, 0, a->num_groups, "dense group indices in [0, numGroups)");
  a->estimator = static_cast<AdvEstimator>(r.integer("estimator", 0, kNumAdvEstimators - 1));
  a->scale = static_cast<AdvScale>(r.integer("scale", 0, 2));
  a->eps = r.num("eps");
  a->unbiased = r.flag("unbiased", true);
  a->normalize = r.flag("normalize", false);
  // opo reads lengths, remax baselines: required there (the kernel dereferences them)
  a->lengths = r.typed<float>("lengths", napi_float32_array, a->S, a->estimator != AdvEstimator::Opo);
  a->baselines = r.typed<float>("baselines", napi_float32_array, a->S, a->estimator != AdvEstimator::Remax);
  a->advantages = r.typed<float>("advantages", napi_float32_array, a->S);
  a->reward = r.typed<float>("reward", napi_float32_array, a->S);
  a->group_mean = r.typed<float>("groupMean", napi_float32_array, a->num_groups);
  a->group_std = r.typed<float>("groupStd", napi_float32_array, a->num_groups);
  job->execute = [a] { group_advantages_cpu(*a); };
  job->result = [a](Napi::Env env) -> Napi::Value {
    Napi::Object o = Napi::Object::New(env);
    o.Set("zeroStdFraction", a->zero_std_fraction);
    o.Set("numNoReward", static_cast<double>(a->num_no_reward));
    o.Set("firstInf", static_cast<double>(a->first_inf));
    return o;
  };
  return run_job(info.Env(), std::move(job), is_async(info));
}

Napi::Value KlPenalty(const Napi::CallbackInfo& info) {
  auto job = std::make_unique<Job>();
  ArgReader r(info, *job);
  auto a = std::make_shared<KlPenaltyArgs>();
  a->n = r.integer("n", 0, kMaxDim);
  a->logp = r.typed<float>("logp", napi_float32_array, a->n);
  a->ref_logp = r.typed<float>("refLogp", napi_float32_array, a->n);
  a->estimator = static_cast<KlEstimator>(r.integer("estimator", 0, kNumKlEstimators - 1));
  a->clamp_log_ratio = r.flag("clampLogRatio", true);
  a->kl = r.typed<float>("kl", napi_float32_array, a->n);
  a->grad = r.typed<float>("grad", napi_float32_array, a->n, true);
  job->execute = [a] { kl_penalty_cpu(*a); };
  job->result = [a](Napi::Env env) -> Napi::Value { return Napi::Boolean::New(env, a->all_finite); };
  return run_job(info.Env(), std::move(job), is_async(info));
}

Napi::Value KlFull(const Napi::CallbackInfo& info) {
  auto job = std::make_unique<Job>();
  ArgReader r(info, *job);
  auto a = std::make_shared<KlFullArgs>();
  a->N = r.integer("N", 0, kMaxDim);
  a->V = r.integer("V", 1, kMaxDim);
  const int64_t NV = r.product("V", a->N, a->V);
  TensorView z = r.float_tensor("logits", NV), zr = r.float_tensor("refLogits", NV);
  if (zr.dtype != z.dtype) r.fail("refLogitsDtype", "the logits' dtype");
  a->logits = z.data;
  a->ref_logits = zr.data;
  a->dtype = z.dtype;
  a->temperature = static_cast<float>(r.num("temperature"));
  if (!(a->temperature > 0) || !std::isfinite(a->temperature)) r.fail("temperature", "a finite number > 0");
  a->coef = r.typed<float>("coef", napi_float32_array, a->N, true);
  a->kl = r.typed<float>("kl", napi_float32_array, a->N);
  if (r.has("grad")) {
    TensorView g = r.float_tensor("grad", NV);
    if (g.dtype != z.dtype) r.fail("gradDtype", "the logits' dtype");
    a->grad = g.data;
  }
  a->accumulate = r.flag("accumulate", false);
  // gradInPlace: the gradient over the policy logits (one pinned array, never pinned twice)
  if (r.flag("gradInPlace", false)) {
    if (a->grad || a->accumulate) r.fail("gradInPlace", "given without grad and accumulate");
    a->grad = const_cast<void*>(z.data);
  }
  // internal (grpoLossFromLogits, klEstimator 'full', in place): the fused policy term
  a->policy_grad = r.typed<float>("policyGrad", napi_float32_array, a->N, true);
  a->policy_grad_h = r.typed<float>("policyGradEntropy", napi_float32_array, a->N, true);
  if (a->policy_grad) {
    a->targets = r.ids<int32_t>("targets", napi_int32_array, a->N, 0, a->V, "ids in [0, V)");
    if (!a->grad || a->accumulate) r.fail("policyGrad", "given only with grad and without accumulate");
  }
  if (a->policy_grad_h) {
    if (!a->policy_grad) r.fail("policyGradEntropy", "given only with policyGrad");
    a->entropy = r.typed<float>("entropy", napi_float32_array, a->N);
  }
  job->execute = [a] { kl_full_cpu(*a); };
  job->result = [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
  return run_job(info.Env(), std::move(job), is_async(info));
}

Napi::Value GrpoLoss(const Napi::CallbackInfo& info) {
  auto job = std::make_unique<Job>();
  ArgReader r(info, *job);
  auto a = std::make_shared<GrpoLossArgs>();
  a->S = r.integer("S", 0, kMaxDim);
  a->T = r.integer("T", 0, kMaxDim);
  int64_t N = r.product("T", a->S, a->T);
  a->logp = r.typed<float>("logp", napi_float32_array, N);
  a->old_logp = r.typed<float>("oldLogp", napi_float32_array, N, true);
  a->ref_logp = r.typed<float>("refLogp", napi_float32_array, N, true);
  a->advantages = r.typed<float>("advantages", napi_float32_array, a->S);
  a->mask = r.typed<uint8_t>("mask", napi_uint8_array, N);
  a->entropy = r.typed<float>("entropy", napi_float32_array, N, true);
  a->rollout_logp = r.typed<float>("rolloutLogp", napi_float32_array, N, true);
  read_options(r, a->opt);
  if (a->opt.beta != 0 && !a->ref_logp) r.fail("refLogp", "given when beta != 0");
  if (a->opt.top_entropy_quantile < 1 && !a->entropy) r.fail("entropy", "given when topEntropyQuantile < 1");
  if (a->opt.rollout_is != RolloutIs::Off && !a->rollout_logp) r.fail("rolloutLogp", "given when rolloutIsMode is set");
  a->grad_logp = r.typed<float>("gradLogp", napi_float32_array, N, true);
  a->per_token_loss = r.typed<float>("perTokenLoss", napi_float32_array, N, true);
  a->grad_entropy = r.typed<float>("gradEntropy", napi_float32_array, N, true);
  if (a->opt.entropy_coef != 0 && !a->entropy) r.fail("entropy", "given when entropyCoef != 0");
  a->check_inputs = true;
  job->execute = [a] { grpo_loss_cpu(*a); };
  job->result = [a](Napi::Env env) -> Napi::Value {
    // inputsOk false: a mask value or a masked input was bad and nothing was written (the TS layer names it)
    Napi::Object o = metrics_to_js(env, a->metrics);
    o.Set("inputsOk", a->inputs_ok);
    return o;
  };
  return run_job(info.Env(), std::move(job), is_async(info));
}

Napi::Value GrpoLossFromLogits(const Napi::CallbackInfo& info) {
  auto job = std::make_unique<Job>();
  ArgReader r(info, *job);
  auto a = std::make_shared<GrpoLossFromLogitsArgs>();
  a->S = r.integer("S", 0, kMaxDim);
  a->T = r.integer("T", 0, kMaxDim);
  a->V = r.integer("V", 1, kMaxDim);
  int64_t N = r.product("T", a->S, a->T);
  int64_t NV = r.product("V", N, a->V);
  a->logits = r.float_tensor("logits", NV);
  a->targets = r.ids<int32_t>("targets", napi_int32_array, N, 0, a->V, "ids in [0, V)");
  a->temperature = static_cast<float>(r.num("temperature"));
  if (!(a->temperature > 0) || !std::isfinite(a->temperature)) r.fail("temperature", "a finite number > 0");
  a->old_logp = r.typed<float>("oldLogp", napi_float32_array, N, true);
  a->ref_logp = r.typed<float>("refLogp", napi_float32_array, N, true);
  a->advantages = r.typed<float>("advantages", napi_float32_array, a->S);
  a->mask = r.typed<uint8_t>("mask", napi_uint8_array, N);
  a->rollout_logp = r.typed<float>("rolloutLogp", napi_float32_array, N, true);
  read_options(r, a->opt);
  if (a->opt.beta != 0 && !a->ref_logp) r.fail("refLogp", "given when beta != 0");
  if (a->opt.rollout_is != RolloutIs::Off && !a->rollout_logp) r.fail("rolloutLogp", "given when rolloutIsMode is set");
  a->grad_mode = static_cast<GradMode>(r.integer("gradMode", 0, 2));
  if (a->grad_mode == GradMode::Separate) {
    a->grad_logits = r.float_tensor("gradLogits", NV);
    if (a->grad_logits.dtype != a->logits.dtype) r.fail("gradLogits", "of the same dtype as logits");
  } else if (a->grad_mode == GradMode::InPlace) {
    a->grad_logits = a->logits;
  }
  if (a->grad_mode == GradMode::Separate) {  // the kernel streams rows out while reading others
    const char* lo = static_cast<const char*>(a->logits.data);
    const char* g = static_cast<const char*>(a->grad_logits.data);
    const int64_t bytes = NV * dtype_size(a->logits.dtype);
    if (g < lo + bytes && lo < g + bytes) r.fail("gradLogits", "a buffer apart from logits (gradMode 2 is in place)");
  }
  if (a->opt.top_entropy_quantile < 1 && !(a->opt.top_entropy_quantile >= 0)) r.fail("topEntropyQuantile", "a number in [0, 1]");
  a->logp = r.typed<float>("logp", napi_float32_array, N);
  a->entropy = r.typed<float>("entropy", napi_float32_array, N);
  a->grad_logp = r.typed<float>("gradLogp", napi_float32_array, N, true);
  job->execute = [a] { grpo_loss_from_logits_cpu(*a); };
  job->result = [a](Napi::Env env) -> Napi::Value { return metrics_to_js(env, a->metrics); };
  return run_job(info.Env(), std::move(job), is_async(info));
}

// Two byte ranges of the caller's buffers share memory.
bool overlaps(const void* p, int64_t pb, const void* q, int64_t qb) {
  const char* a = static_cast<const char*>(p);
  const char* b = static_cast<const char*>(q);
  return a && b && a < b + qb && b < a + pb;
}

Napi::Value GrpoLossFromHidden(const Napi::CallbackInfo& info) {
  auto job = std::make_unique<Job>();
  ArgReader r(info, *job);
  auto a = std::make_shared<GrpoLossFromHiddenArgs>();
  a->S = r.integer("S", 0, kMaxDim);
  a->T = r.integer("T", 0, kMaxDim);
  a->V = r.integer("V", 1, kMaxDim);
  a->D = r.integer("D", 1, kMaxDim);
  int64_t N = r.product("T", a->S, a->T);
  int64_t ND = r.product("D", N, a->D), VD = r.product("D", a->V, a->D);
  a->hidden = r.float_tensor("hidden", ND);
  a->weight = r.float_tensor("weight", VD);
  a->chunk = r.integer("chunk", 1, kMaxDim);
  r.product("chunk", a->chunk < N ? a->chunk : N, a->V);
  // copied and checked here: the kernel indexes W's rows with them while JS may change the array
  a->targets = r.ids<int32_t>("targets", napi_int32_array, N, 0, a->V, "ids in [0, V)");
  a->temperature = static_cast<float>(r.num("temperature"));
  if (!(a->temperature > 0) || !std::isfinite(a->temperature)) r.fail("temperature", "a finite number > 0");
  a->old_logp = r.typed<float>("oldLogp", napi_float32_array, N, true);
  a->ref_logp = r.typed<float>("refLogp", napi_float32_array, N, true);
  a->advantages = r.typed<float>("advantages", napi_float32_array, a->S);
  a->mask = r.typed<uint8_t>("mask", napi_uint8_array, N);
  a->rollout_logp = r.typed<float>("rolloutLogp", napi_float32_array, N, true);
  read_options(r, a->opt);
  if (a->opt.beta != 0 && !a->ref_logp) r.fail("refLogp", "given when beta != 0");
  if (a->opt.top_entropy_quantile < 1 && !(a->opt.top_entropy_quantile >= 0)) r.fail("topEntropyQuantile", "a number in [0, 1]");
  if (a->opt.rollout_is != RolloutIs::Off && !a->rollout_logp) r.fail("rolloutLogp", "given when rolloutIsMode is set");
  a->grad_hidden = r.typed<float>("gradHidden", napi_float32_array, ND, true);
  a->grad_weight = r.typed<float>("gradWeight", napi_float32_array, VD, true);
  // The kernel writes the gradients while it still reads h and W.
  const int64_t hb = ND * dtype_size(a->hidden.dtype), wb = VD * dtype_size(a->weight.dtype);
  if (overlaps(a->grad_hidden, ND * 4, a->hidden.data, hb) || overlaps(a->grad_hidden, ND * 4, a->weight.data, wb) ||
      overlaps(a->grad_hidden, ND * 4, a->grad_weight, VD * 4))
    r.fail("gradHidden", "a buffer apart from hidden, weight and gradWeight");
  if (overlaps(a->grad_weight, VD * 4, a->hidden.data, hb) || overlaps(a->grad_weight, VD * 4, a->weight.data, wb))
    r.fail("gradWeight", "a buffer apart from hidden and weight");
  a->logp = r.typed<float>("logp", napi_float32_array, N);
  a->entropy = r.typed<float>("entropy", napi_float32_array, N);
  a->grad_logp = r.typed<float>("gradLogp", napi_float32_array, N, true);
  job->execute = [a] { grpo_loss_from_hidden_cpu(*a); };
  job->result = [a](Napi::Env env) -> Napi::Value { return metrics_to_js(env, a->metrics); };
  return run_job(info.Env(), std::move(job), is_async(info));
}

// Bench hook (bench/grpo_loss_from_hidden.js): the model's dense kernels on typed arrays, so the
// materialised-logits baseline (matmul + grpoLossFromLogits + backward matmuls) runs on the same
// matmul as grpoLossFromHidden. Sync only. kind 0: Y[N, out] = X[N, in]·W[in, out] (+ Y when
// accumulate); kind 1: W[in, out] += X[N, in]ᵀ·Y[N, out].
Napi::Value BenchMatmul(const Napi::CallbackInfo& info) {
  auto job = std::make_unique<Job>();
  ArgReader r(info, *job);
  const int64_t N = r.integer("N", 1, kMaxDim), in = r.integer("in", 1, kMaxDim), out = r.integer("out", 1, kMaxDim);
  const int64_t kind = r.integer("kind", 0, 1);
  const bool acc = r.flag("accumulate", false);
  const float* X = r.typed<float>("X", napi_float32_array, r.product("in", N, in));
  float* W = r.typed<float>("W", napi_float32_array, r.product("out", in, out));
  float* Y = r.typed<float>("Y", napi_float32_array, r.product("out", N, out));
  job->execute = [=] {
    if (kind == 0) model::matmul(X, W, nullptr, Y, N, in, out, acc);
    else model::matmul_dw(X, Y, W, nullptr, N, in, out);
  };
  job->result = [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
  return run_job(info.Env(), std::move(job), false);
}

Napi::Value Sample(const Napi::CallbackInfo& info) {
  auto job = std::make_unique<Job>();
  ArgReader r(info, *job);
  auto a = std::make_shared<SampleArgs>();
  a->R = r.integer("R", 0, kMaxDim);
  a->V = r.integer("V", 1, kMaxDim);
  a->logits = r.float_tensor("logits", r.product("V", a->R, a->V));
  a->temperature = r.typed<float>("temperature", napi_float32_array, a->R);
  a->top_k = r.typed<int32_t>("topK", napi_int32_array, a->R);
  a->top_p = r.typed<float>("topP", napi_float32_array, a->R);
  a->min_p = r.typed<float>("minP", napi_float32_array, a->R);
  a->seed_lo = static_cast<uint32_t>(r.integer("seedLo", 0, 0xffffffffLL));
  a->seed_hi = static_cast<uint32_t>(r.integer("seedHi", 0, 0xffffffffLL));
  a->step = static_cast<uint32_t>(r.integer("step", 0, 0xffffffffLL));
  a->row_ids = r.typed<uint32_t>("rowIds", napi_uint32_array, a->R, true);
  a->tokens = r.typed<int32_t>("tokens", napi_int32_array, a->R);
  a->logp = r.typed<float>("logp", napi_float32_array, a->R);
  a->trunc_logp = r.typed<float>("truncLogp", napi_float32_array, a->R, true);
  job->execute = [a] { sample_cpu(*a); };
  job->result = [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
  return run_job(info.Env(), std::move(job), is_async(info));
}

// Test hook: one Philox 4x32-10 block, philox(counter Uint32Array(4), key Uint32Array(2)) ->
// Uint32Array(4), so tests can check native/common/philox.h against the Random123 vectors.
Napi::Value Philox(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto u32 = [&](size_t i, size_t n) {
    if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
        info[i].As<Napi::TypedArray>().ElementLength() != n)
      throw Napi::TypeError::New(env, std::string("philox: expected Uint32Array(") + std::to_string(n) + ") for " + (i ? "key" : "counter"));
    return info[i].As<Napi::Uint32Array>();
  };
  Napi::Uint32Array c = u32(0, 4), k = u32(1, 2);
  Philox4 r = philox4x32_10(Philox4{{c[0], c[1], c[2], c[3]}}, k[0], k[1]);
  Napi::Uint32Array out = Napi::Uint32Array::New(env, 4);
  for (size_t i = 0; i < 4; ++i) out[i] = r.v[i];
  return out;
}

Napi::Value NumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), num_threads()); }

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "setNumThreads: expected a number");
  int n = info[0].As<Napi::Number>().Int32Value();
  if (n < 1 || n > 1024) throw Napi::RangeError::New(info.Env(), "setNumThreads: expected an integer in [1, 1024]");
  set_num_threads(n);
  return info.Env().Undefined();
}

Napi::Value Backend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("cpuIsa", cpu_isa());
  o.Set("threads", num_threads());
  o.Set("cuda", cuda_info(env));
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  async_init(env);
  exports.Set("logprobs", Napi::Function::New(env, Logprobs, "logprobs"));
  exports.Set("groupAdvantages", Napi::Function::New(env, GroupAdvantages, "groupAdvantages"));
  exports.Set("klPenalty", Napi::Function::New(env, KlPenalty, "klPenalty"));
  exports.Set("klFull", Napi::Function::New(env, KlFull, "klFull"));
  exports.Set("grpoLoss", Napi::Function::New(env, GrpoLoss, "grpoLoss"));
  exports.Set("grpoLossFromLogits", Napi::Function::New(env, GrpoLossFromLogits, "grpoLossFromLogits"));
  exports.Set("grpoLossFromHidden", Napi::Function::New(env, GrpoLossFromHidden, "grpoLossFromHidden"));
  exports.Set("benchMatmul", Napi::Function::New(env, BenchMatmul, "benchMatmul"));
  exports.Set("sample", Napi::Function::New(env, Sample, "sample"));
  exports.Set("philox", Napi::Function::New(env, Philox, "philox"));
  exports.Set("numThreads", Napi::Function::New(env, NumThreads, "numThreads"));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads, "setNumThreads"));
  exports.Set("backend", Napi::Function::New(env, Backend, "backend"));
  register_model_ops(env, exports);
  register_device_ops(env, exports);
  register_pool_ops(env, exports);
  register_nccl_ops(env, exports);
  return exports;
}

}  // namespace
}  // namespace grpo

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return grpo::Init(env, exports); }
NODE_API_MODULE(grpo_kernels, InitModule)
