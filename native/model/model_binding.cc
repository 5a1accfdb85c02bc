// Export table of the built-in transformer (lib/models/transformer.ts wraps it): one class,
// NativeTransformer, owning a Transformer (native/model/transformer.h) with its parameters,
// gradients and AdamW moments. Argument conversion and dispatch only; the TS layer validates
// with user-facing messages first.
//
// Heavy methods are method(args, async) like the ops. An async call keeps the JS object alive
// until it settles and counts as pending; methods that touch the weights synchronously
// (zeroGrad, step, get/set, dispose) refuse to run while one is pending, so the driver thread
// and the JS thread never touch the model at once. The job also owns a share of the model: if
// the env is torn down mid-call (worker.terminate()), the finalizer drops only its own share and
// the kernel finishes on memory that is still there. Token ids and decode positions are copied
// at call time (napi_args.h ids()), so changing them after the call cannot move the kernel.
#include <napi.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <vector>
#include <cstring>
#include <memory>

#include "../common/async.h"
#include "../common/napi_args.h"
#include "model_handle.h"
#include "transformer.h"

namespace grpo {
namespace {

class NativeTransformer : public Napi::ObjectWrap<NativeTransformer>, ModelHandle<Transformer> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeTransformer",
                       {InstanceMethod("layout", &NativeTransformer::Layout),
                        InstanceMethod("forward", &NativeTransformer::Forward),
                        InstanceMethod("backward", &NativeTransformer::Backward),
                        InstanceMethod("decode", &NativeTransformer::Decode),
                        InstanceMethod("zeroGrad", &NativeTransformer::ZeroGrad),
                        InstanceMethod("step", &NativeTransformer::Step),
                        InstanceMethod("copy", &NativeTransformer::Copy),
                        InstanceMethod("adamStep", &NativeTransformer::AdamStep),
                        InstanceMethod("setAdamStep", &NativeTransformer::SetAdamStep),
                        InstanceMethod("dispose", &NativeTransformer::Dispose)});
  }

  explicit NativeTransformer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeTransformer>(info) {
    Job scratch;
    ArgReader r(info, scratch);
    ModelConfig c;
    c.V = r.integer("vocabSize", 1, 1 << 24);
    c.d = r.integer("dModel", 1, 1 << 16);
    c.n_layers = r.integer("nLayers", 1, 1024);
    c.H = r.integer("nHeads", 1, 1 << 16);
    c.F = r.integer("dFF", 1, 1 << 20);
    c.T = r.integer("maxSeqLen", 1, 1 << 20);
    c.seed = static_cast<uint64_t>(r.integer("seedLo", 0, 0xffffffffLL)) |
             (static_cast<uint64_t>(r.integer("seedHi", 0, 0xffffffffLL)) << 32);
    if (c.d % c.H != 0) r.fail("nHeads", "a divisor of dModel");
    static const char* kEnc[kNumEncoders][4] = {{"visionP", "visionHidden", "visionPositions", "visionFrames"},
                                                 {"audioP", "audioHidden", "audioPositions", "audioFrames"}};
    for (int e = 0; e < kNumEncoders; ++e) {
      if (!r.has(kEnc[e][0])) continue;
      c.enc[e].P = r.integer(kEnc[e][0], 1, 1 << 20);
      c.enc[e].Hd = r.integer(kEnc[e][1], 1, 1 << 16);
      c.enc[e].npos = r.integer(kEnc[e][2], 1, 1 << 20);
      c.enc[e].ntemp = r.has(kEnc[e][3]) ? r.integer(kEnc[e][3], 0, 1 << 20) : 0;
    }
    c.freeze_encoder = r.flag("freezeEncoder", false);
    c.freeze_projector = r.flag("freezeProjector", false);
    std::shared_ptr<Transformer> m;
    try {
      m = std::make_shared<Transformer>(c);
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
    const int64_t bytes = static_cast<int64_t>(sizeof(float)) * 4 * m->num_params();
    adopt(info.Env(), std::move(m), bytes);
  }

  // The finalizer: frees the model if dispose() was never called.
  void Finalize(Napi::Env env) override { release(env); }

 private:
  // Optional encoder inputs <enc>M, <enc>Feat [M, P], <enc>Spos, <enc>Tpos, <enc>Dest ([M] int32,
  // copied and range-checked here: spatial ids in [0, positions), temporal in [-1, frames),
  // destinations distinct tokens in [0, N)).
  static void read_media(ArgReader& r, const ModelConfig& c, int64_t N, MediaInput* out) {
    static const char* kNames[kNumEncoders][5] = {{"visionM", "visionFeat", "visionSpos", "visionTpos", "visionDest"},
                                                  {"audioM", "audioFeat", "audioSpos", "audioTpos", "audioDest"}};
    std::vector<char> used;
    for (int e = 0; e < kNumEncoders; ++e) {
      const char* const* k = kNames[e];
      out[e] = MediaInput{};
      if (!r.has(k[0])) continue;
      const int64_t M = r.integer(k[0], 0, N);
      if (M == 0) continue;
      const EncoderConfig& ec = c.enc[e];
      if (ec.P == 0) r.fail(k[0], "0: this model has no such encoder");
      out[e].M = M;
      out[e].feat = r.typed<float>(k[1], napi_float32_array, r.product(k[1], M, ec.P));
      out[e].spos = r.ids<int32_t>(k[2], napi_int32_array, M, 0, ec.npos, "ids in [0, positions)");
      out[e].tpos = r.ids<int32_t>(k[3], napi_int32_array, M, -1, std::max<int64_t>(ec.ntemp, 0), "ids in [-1, frames)");
      out[e].dest = r.ids<int32_t>(k[4], napi_int32_array, M, 0, N, "token indices in [0, tokens)");
      used.resize(static_cast<size_t>(N), 0);
      for (int64_t m = 0; m < M; ++m) {
        if (used[out[e].dest[m]]) r.fail(k[4], "distinct token indices (one media row per token)");
        used[out[e].dest[m]] = 1;
      }
    }
  }

  Napi::Value Layout(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Transformer& m = model(env);
    const auto& lay = m.layout();
    Napi::Array out = Napi::Array::New(env, lay.size());
    for (size_t i = 0; i < lay.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", lay[i].name);
      Napi::Array shape = Napi::Array::New(env, lay[i].shape.size());
      for (size_t j = 0; j < lay[i].shape.size(); ++j) shape.Set(j, static_cast<double>(lay[i].shape[j]));
      o.Set("shape", shape);
      o.Set("offset", static_cast<double>(lay[i].offset));
      o.Set("size", static_cast<double>(lay[i].size));
      o.Set("decay", lay[i].decay);
      o.Set("frozen", lay[i].frozen);
      out.Set(i, o);
    }
    return out;
  }

  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Transformer& m = model(info.Env());
    auto job = std::make_unique<Job>();
    ArgReader r(info, *job);
    const ModelConfig& c = m.config();
    const int64_t B = r.integer("B", 1, int64_t(1) << 31);
    const int64_t L = r.integer("L", 1, c.T);
    const int64_t N = r.product("L", B, L);
    const int32_t* tokens = r.ids<int32_t>("tokens", napi_int32_array, N, 0, c.V, "ids in [0, vocabSize)");
    float* logits = r.typed<float>("logits", napi_float32_array, r.product("logits", N, c.V));
    const bool train = r.flag("train", false);
    auto media = std::make_shared<std::array<MediaInput, kNumEncoders>>();
    read_media(r, c, N, media->data());
    std::shared_ptr<Transformer> mp = share();
    job->result = [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
    return run(info, std::move(job), [mp, tokens, B, L, logits, train, media] { mp->forward(tokens, B, L, logits, train, media->data()); });
  }

  Napi::Value Backward(const Napi::CallbackInfo& info) {
    Transformer& m = model(info.Env());
    auto job = std::make_unique<Job>();
    ArgReader r(info, *job);
    if (!m.has_train_forward() && pending_->load() == 0) r.fail("gradLogits", "preceded by a forward with train: true");
    const int64_t N = r.integer("N", 1, int64_t(1) << 40);
    const float* g = r.typed<float>("gradLogits", napi_float32_array, r.product("gradLogits", N, m.config().V));
    std::shared_ptr<Transformer> mp = share();
    job->result = [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
    return run(info, std::move(job), [mp, g, N] {
      if (mp->train_tokens() != N) throw std::invalid_argument("grpo-kernels (native): gradLogits does not match the last train forward");
      mp->backward(g);
    });
  }

  Napi::Value Decode(const Napi::CallbackInfo& info) {
    Transformer& m = model(info.Env());
    auto job = std::make_unique<Job>();
    ArgReader r(info, *job);
    const ModelConfig& c = m.config();
    auto a = std::make_shared<DecodeArgs>();
    a->slots = r.integer("slots", 1, int64_t(1) << 31);
    a->ctx = r.integer("ctx", 1, c.T);
    a->cache = r.typed<float>("cache", napi_float32_array,
                              r.product("cache", 2 * c.n_layers * a->slots, r.product("cache", a->ctx, c.d)));
    a->R = r.integer("R", 1, a->slots);
    a->slot = r.copied("slot", a->R);
    a->start = r.copied("start", a->R);
    a->count = r.copied("count", a->R);
    int64_t M = 0;
    for (int64_t i = 0; i < a->R; ++i) {
      if (a->slot[i] < 0 || a->slot[i] >= a->slots) r.fail("slot", "cache slots in [0, slots)");
      if (a->count[i] < 1 || a->start[i] < 0 || int64_t(a->start[i]) + a->count[i] > a->ctx)
        r.fail("count", "positions start .. start+count-1 inside [0, ctx)");
      M += a->count[i];
    }
    a->tokens = r.ids<int32_t>("tokens", napi_int32_array, M, 0, c.V, "ids in [0, vocabSize)");
    a->logits = r.typed<float>("logits", napi_float32_array, r.product("logits", a->R, c.V));
    read_media(r, c, M, a->media);
    std::shared_ptr<Transformer> mp = share();
    job->result = [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
    return run(info, std::move(job), [mp, a] { mp->decode(*a); });
  }

  Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
    idle_model(info.Env()).zero_grad();
    return info.Env().Undefined();
  }

  Napi::Value Step(const Napi::CallbackInfo& info) {
    Transformer& m = idle_model(info.Env());
    Job scratch;
    ArgReader r(info, scratch);
    AdamWOptions o;
    o.lr = r.num("lr");
    o.beta1 = r.num("beta1");
    o.beta2 = r.num("beta2");
    o.eps = r.num("eps");
    o.weight_decay = r.num("weightDecay");
    o.max_grad_norm = r.num("maxGradNorm");
    return Napi::Number::New(info.Env(), m.step(o));
  }

  // copy(which, buffer, toModel): which 0 params, 1 grads, 2 Adam m, 3 Adam v; copies the whole
  // flat buffer [numParameters] from the model into `buffer`, or the other way.
  Napi::Value Copy(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Transformer& m = idle_model(env);
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsTypedArray() || !info[2].IsBoolean())
      throw Napi::TypeError::New(env, "grpo-kernels (native): copy(which, Float32Array, toModel)");
    const int which = info[0].As<Napi::Number>().Int32Value();
    Job scratch;  // names a SharedArrayBuffer / resizable / detached buffer before memcpy touches it
    napi_typedarray_type type;
    size_t length;
    float* buf = static_cast<float*>(scratch.pin("buffer", info[1], &type, &length));
    if (type != napi_float32_array || static_cast<int64_t>(length) != m.num_params())
      throw Napi::TypeError::New(env, "grpo-kernels (native): copy buffer must be a Float32Array of numParameters");
    float* src = which == 0 ? m.params() : which == 1 ? m.grads() : which == 2 ? m.adam_m() : which == 3 ? m.adam_v() : nullptr;
    if (!src) throw Napi::RangeError::New(env, "grpo-kernels (native): copy which must be 0..3");
    const size_t bytes = sizeof(float) * static_cast<size_t>(m.num_params());
    if (info[2].As<Napi::Boolean>().Value())
      std::memcpy(src, buf, bytes);
    else
      std::memcpy(buf, src, bytes);
    return env.Undefined();
  }

  Napi::Value AdamStep(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(model(info.Env()).adam_step()));
  }

  Napi::Value SetAdamStep(const Napi::CallbackInfo& info) {
    Transformer& m = idle_model(info.Env());
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "grpo-kernels (native): setAdamStep(n)");
    m.set_adam_step(info[0].As<Napi::Number>().Int64Value());
    return info.Env().Undefined();
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (model_) idle_model(info.Env());
    release(info.Env());
    return info.Env().Undefined();
  }

};

}  // namespace

Napi::Function define_hf_model(Napi::Env env);  // hf_binding.cc

void register_model_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeTransformer", NativeTransformer::Define(env));
  exports.Set("NativeHfModel", define_hf_model(env));
}

}  // namespace grpo
