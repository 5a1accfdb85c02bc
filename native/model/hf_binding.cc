// Export table of the HF causal LM (lib/models/hf/model.ts wraps it): NativeHfModel owning an
// HfModel (hf_model.h), and the safetensors loader that maps checkpoint files (mmap) and widens
// bf16/f16/f32 tensors straight into the model's memory, so no checkpoint byte passes through a
// JS buffer (Node buffers stop at 4 GiB; a 0.5B model file is ~1 GB). Argument conversion and
// dispatch only; lib/models/hf/ has parsed and validated the headers with user-facing messages.
//
// Async calls keep the JS object alive and count as pending; methods that touch the weights
// synchronously refuse to run while one is pending (as NativeTransformer does).
#include <fcntl.h>
#include <napi.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "../common/async.h"
#include "../common/half.h"
#include "../common/napi_args.h"
#include "model_handle.h"
#include "hf_model.h"

namespace grpo {
namespace {

// A read-only private mapping of a whole file, unmapped on destruction.
struct MappedFile {
  const uint8_t* data = nullptr;
  size_t size = 0;
  explicit MappedFile(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error(path + ": cannot open (" + std::strerror(errno) + ")");
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      throw std::runtime_error(path + ": cannot stat");
    }
    size = static_cast<size_t>(st.st_size);
    if (size > 0) {
      void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        throw std::runtime_error(path + ": cannot mmap (" + std::strerror(errno) + ")");
      }
      data = static_cast<const uint8_t*>(p);
    }
    ::close(fd);
  }
  ~MappedFile() {
    if (data) ::munmap(const_cast<uint8_t*>(data), size);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
};

class NativeHfModel : public Napi::ObjectWrap<NativeHfModel>, ModelHandle<HfModel> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeHfModel",
                       {InstanceMethod("layout", &NativeHfModel::Layout), InstanceMethod("forward", &NativeHfModel::Forward),
                        InstanceMethod("backward", &NativeHfModel::Backward),
                        InstanceMethod("forwardHidden", &NativeHfModel::ForwardHidden),
                        InstanceMethod("backwardHidden", &NativeHfModel::BackwardHidden),
                        InstanceMethod("headViews", &NativeHfModel::HeadViews), InstanceMethod("decode", &NativeHfModel::Decode),
                        InstanceMethod("zeroGrad", &NativeHfModel::ZeroGrad), InstanceMethod("step", &NativeHfModel::Step),
                        InstanceMethod("getTensor", &NativeHfModel::GetTensor), InstanceMethod("setTensor", &NativeHfModel::SetTensor),
                        InstanceMethod("loadFile", &NativeHfModel::LoadFile), InstanceMethod("adamStep", &NativeHfModel::AdamStep),
                        InstanceMethod("setAdamStep", &NativeHfModel::SetAdamStep), InstanceMethod("dispose", &NativeHfModel::Dispose)});
  }

  explicit NativeHfModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeHfModel>(info) {
    Job scratch;
    ArgReader r(info, scratch);
    HfConfig c;
    c.V = r.integer("vocabSize", 1, 1 << 24);
    c.d = r.integer("hiddenSize", 1, 1 << 17);
    c.n_layers = r.integer("numLayers", 1, 4096);
    c.H = r.integer("numHeads", 1, 1 << 12);
    c.KVH = r.integer("numKvHeads", 1, c.H);
    c.hd = r.integer("headDim", 2, 1 << 12);
    c.F = r.integer("intermediateSize", 1, 1 << 20);
    c.T = r.integer("maxPositions", 1, int64_t(1) << 24);
    c.eps = static_cast<float>(r.num("rmsNormEps"));
    c.qkv_bias = r.flag("qkvBias", false);
    c.qk_norm = r.flag("qkNorm", false);
    c.tied = r.flag("tied", false);
    if (c.H % c.KVH != 0 || c.hd % 2 != 0) r.fail("numKvHeads", "a divisor of numHeads, with an even headDim");
    c.lora_r = r.has("loraR") ? r.integer("loraR", 0, 1 << 16) : 0;
    c.lora_scale = c.lora_r > 0 ? static_cast<float>(r.num("loraScale")) : 0.f;
    c.lora_targets = c.lora_r > 0 ? static_cast<uint32_t>(r.integer("loraTargets", 1, 127)) : 0;
    c.frozen = r.flag("frozen", false);
    c.bf16_frozen = r.flag("bf16Frozen", false);
    const float* f = r.typed<float>("invFreq", napi_float32_array, c.hd / 2);
    c.inv_freq.assign(f, f + c.hd / 2);
    std::shared_ptr<HfModel> m;
    try {
      m = std::make_shared<HfModel>(c);
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
    const int64_t bytes = m->weight_bytes();
    adopt(info.Env(), std::move(m), bytes);
  }

  void Finalize(Napi::Env env) override { release(env); }

 private:
  Napi::Value Layout(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const HfModel& m = model(env);
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
      o.Set("trainable", static_cast<bool>(m.trainable()[i]));
      out.Set(i, o);
    }
    return out;
  }

  Napi::Value Forward(const Napi::CallbackInfo& info) {
    HfModel& m = model(info.Env());
    auto job = std::make_unique<Job>();
    ArgReader r(info, *job);
    const HfConfig& c = m.config();
    const int64_t B = r.integer("B", 1, int64_t(1) << 31);
    const int64_t L = r.integer("L", 1, c.T);
    const int64_t N = r.product("L", B, L);
    const int32_t* tokens = r.ids<int32_t>("tokens", napi_int32_array, N, 0, c.V, "ids in [0, vocabSize)");
    float* logits = r.typed<float>("logits", napi_float32_array, r.product("logits", N, c.V));
    const bool train = r.flag("train", false);
    const bool adapters = r.flag("adapters", true);
    std::shared_ptr<HfModel> mp = share();
    job->result = [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
    return run(info, std::move(job), [mp, tokens, B, L, logits, train, adapters] {
      mp->set_adapters(adapters);
      mp->forward(tokens, B, L, logits, train);
      mp->set_adapters(true);
    });
  }

  Napi::Value Backward(const Napi::CallbackInfo& info) {
    HfModel& m = model(info.Env());
    auto job = std::make_unique<Job>();
    ArgReader r(info, *job);
    if (!m.has_train_forward() && pending_->load() == 0) r.fail("gradLogits", "preceded by a forward with train: true");
    const int64_t N = r.integer("N", 1, int64_t(1) << 40);
    const float* g = r.typed<float>("gradLogits", napi_float32_array, r.product("gradLogits", N, m.config().V));
    std::shared_ptr<HfModel> mp = share();
    job->result = [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
    return run(info, std::move(job), [mp, g, N] {
      if (mp->train_tokens() != N) throw std::invalid_argument("grpo-kernels (native): gradLogits does not match the last train forward");
      mp->backward(g);
    });
  }

  // forwardHidden({ tokens, B, L, R, rows: Int32Array [R] (positions in [0, B*L) or -1), hidden:
  // Float32Array [R*d], train, adapters }, async)
  Napi::Value ForwardHidden(const Napi::CallbackInfo& info) {
    HfModel& m = model(info.Env());
    auto job = std::make_unique<Job>();
    ArgReader r(info, *job);
    const HfConfig& c = m.config();
    const int64_t B = r.integer("B", 1, int64_t(1) << 31);
    const int64_t L = r.integer("L", 1, c.T);
    const int64_t N = r.product("L", B, L);
    const int32_t* tokens = r.ids<int32_t>("tokens", napi_int32_array, N, 0, c.V, "ids in [0, vocabSize)");
    const int64_t R = r.integer("R", 1, int64_t(1) << 40);
    const int32_t* rows = r.ids<int32_t>("rows", napi_int32_array, R, -1, N, "positions in [0, batch*length) or -1");
    float* hidden = r.typed<float>("hidden", napi_float32_array, r.product("hidden", R, c.d));
    const bool train = r.flag("train", false);
    const bool adapters = r.flag("adapters", true);
    std::shared_ptr<HfModel> mp = share();
    job->result = [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
    return run(info, std::move(job), [mp, tokens, B, L, rows, R, hidden, train, adapters] {
      mp->set_adapters(adapters);
      mp->forward_hidden(tokens, B, L, rows, R, hidden, train);
      mp->set_adapters(true);
    });
  }

  Napi::Value BackwardHidden(const Napi::CallbackInfo& info) {
    HfModel& m = model(info.Env());
    auto job = std::make_unique<Job>();
    ArgReader r(info, *job);
    if (!m.has_train_hidden() && pending_->load() == 0) r.fail("gradHidden", "preceded by a forwardHidden with train: true");
    const int64_t R = r.integer("R", 1, int64_t(1) << 40);
    const float* g = r.typed<float>("gradHidden", napi_float32_array, r.product("gradHidden", R, m.config().d));
    std::shared_ptr<HfModel> mp = share();
    job->result = [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
    return run(info, std::move(job), [mp, g, R] {
      if (mp->train_hidden_rows() != R) throw std::invalid_argument("grpo-kernels (native): gradHidden does not match the last train forwardHidden");
      mp->backward_hidden(g);
    });
  }

  // { weight: Float32Array [V*d], grad: Float32Array [V*d] | null }: views of the output weight
  // and its gradient in the model's own memory (no V×d copy per loss call). Each view holds a
  // share of the model, so dispose() cannot free memory a view still reaches.
  Napi::Value HeadViews(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    HfModel& m = idle_model(env);
    const size_t n = static_cast<size_t>(m.config().V * m.config().d);
    auto hold = [&] { return new std::shared_ptr<HfModel>(share()); };
    auto fin = [](Napi::Env, void*, std::shared_ptr<HfModel>* h) { delete h; };
    Napi::Object o = Napi::Object::New(env);
    const void* w = m.head_weight();
    if (m.head_bf16()) {
      Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, const_cast<void*>(w), n * 2, fin, hold());
      o.Set("weight", Napi::Uint16Array::New(env, n, ab, 0));
      o.Set("dtype", "bfloat16");
    } else {
      Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, const_cast<void*>(w), n * 4, fin, hold());
      o.Set("weight", Napi::Float32Array::New(env, n, ab, 0));
      o.Set("dtype", "float32");
    }
    float* g = m.head_grad();
    if (g) {
      Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, g, n * 4, fin, hold());
      o.Set("grad", Napi::Float32Array::New(env, n, ab, 0));
    } else {
      o.Set("grad", env.Null());
    }
    return o;
  }

  Napi::Value Decode(const Napi::CallbackInfo& info) {
    HfModel& m = model(info.Env());
    auto job = std::make_unique<Job>();
    ArgReader r(info, *job);
    const HfConfig& c = m.config();
    auto a = std::make_shared<DecodeArgs>();
    a->slots = r.integer("slots", 1, int64_t(1) << 31);
    a->ctx = r.integer("ctx", 1, c.T);
    a->cache = r.typed<float>("cache", napi_float32_array,
                              r.product("cache", 2 * c.n_layers * a->slots, r.product("cache", a->ctx, c.KVH * c.hd)));
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
    const bool adapters = r.flag("adapters", true);
    std::shared_ptr<HfModel> mp = share();
    job->result = [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
    return run(info, std::move(job), [mp, a, adapters] {
      mp->set_adapters(adapters);
      mp->decode(*a);
      mp->set_adapters(true);
    });
  }

  Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
    idle_model(info.Env()).zero_grad();
    return info.Env().Undefined();
  }

  Napi::Value Step(const Napi::CallbackInfo& info) {
    HfModel& m = idle_model(info.Env());
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

  // (which, index, Float32Array of the tensor's size): 0 params, 1 grads, 2 Adam m, 3 Adam v.
  float* tensor_arg(const Napi::CallbackInfo& info, HfModel& m, int* which, size_t* index) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsTypedArray())
      throw Napi::TypeError::New(env, "grpo-kernels (native): expected (which, index, Float32Array)");
    *which = info[0].As<Napi::Number>().Int32Value();
    const int64_t idx = info[1].As<Napi::Number>().Int64Value();
    if (*which < 0 || *which > 3) throw Napi::RangeError::New(env, "grpo-kernels (native): which must be 0..3");
    if (idx < 0 || idx >= static_cast<int64_t>(m.layout().size())) throw Napi::RangeError::New(env, "grpo-kernels (native): tensor index out of range");
    *index = static_cast<size_t>(idx);
    if (*which != 0 && !m.trainable()[*index])
      throw Napi::RangeError::New(env, "grpo-kernels (native): " + m.layout()[*index].name + " is frozen (no gradient or optimizer state)");
    Napi::TypedArray ta = info[2].As<Napi::TypedArray>();
    if (ta.TypedArrayType() != napi_float32_array || static_cast<int64_t>(ta.ElementLength()) != m.layout()[*index].size)
      throw Napi::TypeError::New(env, "grpo-kernels (native): the buffer must be a Float32Array of the tensor's size");
    return reinterpret_cast<float*>(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
  }

  Napi::Value GetTensor(const Napi::CallbackInfo& info) {
    HfModel& m = idle_model(info.Env());
    int which;
    size_t idx;
    float* buf = tensor_arg(info, m, &which, &idx);
    m.get_tensor(which, idx, buf);
    return info.Env().Undefined();
  }

  Napi::Value SetTensor(const Napi::CallbackInfo& info) {
    HfModel& m = idle_model(info.Env());
    int which;
    size_t idx;
    float* buf = tensor_arg(info, m, &which, &idx);
    m.set_tensor(which, idx, buf);
    return info.Env().Undefined();
  }

  // loadFile({ path, index: Int32Array, offset: Float64Array (absolute byte offsets), dtype:
  // Int32Array (0 F32, 1 BF16, 2 F16) }, async): maps `path` and copies each listed tensor into
  // the parameters. Re-checks every range against the file's size at the time of mapping (the
  // file may have changed since its header was read) and names the file and tensor if not.
  Napi::Value LoadFile(const Napi::CallbackInfo& info) {
    HfModel& m = model(info.Env());
    auto job = std::make_unique<Job>();
    ArgReader r(info, *job);
    Napi::Object o = info[0].As<Napi::Object>();
    if (!o.Get("path").IsString()) r.fail("path", "a string");
    const std::string path = o.Get("path").As<Napi::String>().Utf8Value();
    // index, dtype and offset are copied and checked now: the job reads them later, while JS may
    // change the arrays
    r.typed<int32_t>("index", napi_int32_array, -1);
    const int64_t n = static_cast<int64_t>(o.Get("index").As<Napi::TypedArray>().ElementLength());
    const int32_t* index = r.ids<int32_t>("index", napi_int32_array, n, 0, static_cast<int64_t>(m.layout().size()), "tensor indices of this model");
    const int32_t* dtype = r.ids<int32_t>("dtype", napi_int32_array, n, 0, 3, "0 (F32), 1 (BF16) or 2 (F16)");
    const double* offset_src = r.typed<double>("offset", napi_float64_array, n);
    double* offset = job->own<double>(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      offset[i] = offset_src[i];
      if (!(offset[i] >= 0) || offset[i] > 9007199254740992.0) r.fail("offset", "non-negative byte offsets");
    }
    std::shared_ptr<HfModel> mp = share();
    job->result = [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
    return run(info, std::move(job), [mp, path, index, offset, dtype, n] {
      MappedFile f(path);
      for (int64_t i = 0; i < n; ++i) {
        const ParamInfo& p = mp->layout()[static_cast<size_t>(index[i])];
        const size_t es = dtype[i] == 0 ? 4 : 2;
        const size_t off = static_cast<size_t>(offset[i]), bytes = es * static_cast<size_t>(p.size);
        if (off > f.size || bytes > f.size - off)
          throw std::runtime_error(path + ": tensor '" + p.name + "' lies past the end of the file (" + std::to_string(f.size) +
                                   " bytes; truncated?)");
        // straight from the mapping into the model's storage (a copy when the dtypes agree)
        mp->load_tensor(static_cast<size_t>(index[i]), f.data + off, dtype[i]);
      }
    });
  }

  Napi::Value AdamStep(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(model(info.Env()).adam_step())); }

  Napi::Value SetAdamStep(const Napi::CallbackInfo& info) {
    HfModel& m = idle_model(info.Env());
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

Napi::Function define_hf_model(Napi::Env env) { return NativeHfModel::Define(env); }

}  // namespace grpo
