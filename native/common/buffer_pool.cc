// Reusable memory for the large outputs the TS layer allocates when the caller passes none (the
// N×V gradient of grpoLossFromLogits). A fresh N×V buffer costs its page faults on first write,
// which measured 14× the kernel with reused memory on a loaded VM (bench/results/async_safety.md); reused
// memory costs nothing.
//
// The pool keeps a share of the memory of the last few such buffers (pin.h's V8 backing store)
// and hands one out again, as a new ArrayBuffer over the same memory, only when its share is the
// only one left: every ArrayBuffer that ever covered it, in any thread, has been collected and no
// op pins it. So a result the caller keeps (or transferred to a worker) is never handed out
// twice; a dropped one is reused once the GC has collected it, else a fresh buffer is made.
#include <napi.h>

#include <mutex>
#include <vector>

#include "v8_abi.h"

namespace grpo {
namespace {

constexpr size_t kMaxBlocks = 2;  // a training loop alternates between at most two live gradients
// Per-sequence outputs (groupAdvantages' rewards and advantages, a few MB each) are pooled too:
// at S = 1M a fresh 4 MB output per call cost more than the op (bench/results/small-ops.md).
// Blocks below kSmallBytes count against their own limit, so they never push a gradient out.
// Fresh 256 KB per-group outputs measured ~1.4 ms of page faults each at load ~20 on the 2-core box.
constexpr size_t kSmallBytes = size_t(8) << 20;
constexpr size_t kMaxSmallBlocks = 10;  // five outputs per call, the current and the previous call's

struct Pool {
  std::mutex mu;
  std::vector<std::shared_ptr<v8::BackingStore>> blocks;  // oldest first
  uint64_t reused = 0, fresh = 0;
};
Pool& pool() {
  static Pool* p = new Pool();  // leaked: shares may outlive static destruction order
  return *p;
}

// pooledArrayBuffer(byteLength) -> an ArrayBuffer of at least byteLength bytes (at most twice):
// reused memory when a block is free, else a fresh (zeroed) one that joins the pool.
Napi::Value PooledArrayBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "pooledArrayBuffer: expected a byte length");
  const double d = info[0].As<Napi::Number>().DoubleValue();
  if (!(d >= 1 && d <= 9.0e15) || d != static_cast<double>(static_cast<uint64_t>(d)))
    throw Napi::RangeError::New(env, "pooledArrayBuffer: expected an integer byte length >= 1");
  const size_t bytes = static_cast<size_t>(d);
  Pool& p = pool();
  {
    std::lock_guard<std::mutex> g(p.mu);
    std::shared_ptr<v8::BackingStore>* best = nullptr;
    for (auto& b : p.blocks) {
      const size_t n = b->ByteLength();
      if (b.use_count() == 1 && n >= bytes && n / 2 <= bytes && (!best || n < (*best)->ByteLength())) best = &b;
    }
    if (best) {
      napi_value ab = array_buffer_over(*best);
      if (ab) {
        ++p.reused;
        return Napi::Value(env, ab);
      }
    }
  }
  napi_value ab;
  void* data = nullptr;
  if (napi_create_arraybuffer(env, bytes, &data, &ab) != napi_ok) throw Napi::Error::New(env);
  std::shared_ptr<v8::BackingStore> share = backing_store(ab);
  std::shared_ptr<v8::BackingStore> dropped;  // released outside the lock
  {
    std::lock_guard<std::mutex> g(p.mu);
    ++p.fresh;
    p.blocks.push_back(std::move(share));
    // drop the oldest block of the new one's class when that class is over its limit
    const bool small = bytes < kSmallBytes;
    size_t in_class = 0;
    for (auto& b : p.blocks) in_class += (b->ByteLength() < kSmallBytes) == small;
    if (in_class > (small ? kMaxSmallBlocks : kMaxBlocks)) {
      for (auto it = p.blocks.begin(); it != p.blocks.end(); ++it) {
        if (((*it)->ByteLength() < kSmallBytes) != small) continue;
        dropped = std::move(*it);
        p.blocks.erase(it);
        break;
      }
    }
  }
  return Napi::Value(env, ab);
}

// pooledMemory() -> { blocks, bytes, free, reused, fresh }; pooledMemory(true) first drops the
// pool's shares (memory no ArrayBuffer uses any more is freed).
Napi::Value PooledMemory(const Napi::CallbackInfo& info) {
  Pool& p = pool();
  std::vector<std::shared_ptr<v8::BackingStore>> dropped;
  double bytes = 0, free_blocks = 0;
  Napi::Object o = Napi::Object::New(info.Env());
  {
    std::lock_guard<std::mutex> g(p.mu);
    if (info.Length() > 0 && info[0].ToBoolean().Value()) dropped.swap(p.blocks);
    for (auto& b : p.blocks) {
      bytes += static_cast<double>(b->ByteLength());
      free_blocks += b.use_count() == 1;
    }
    o.Set("blocks", static_cast<double>(p.blocks.size()));
    o.Set("bytes", bytes);
    o.Set("free", free_blocks);
    o.Set("reused", static_cast<double>(p.reused));
    o.Set("fresh", static_cast<double>(p.fresh));
  }
  return o;
}

}  // namespace

void register_pool_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("pooledArrayBuffer", Napi::Function::New(env, PooledArrayBuffer, "pooledArrayBuffer"));
  exports.Set("pooledMemory", Napi::Function::New(env, PooledMemory, "pooledMemory"));
}

}  // namespace grpo
