// The CUDA emulator's runtime (see cuda_emu.h for the model): fibers for the threads of a block,
// barriers, warp exchange, the cudart subset over host memory with poisoned red zones.
#include "cuda_emu.h"

#include <sys/mman.h>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#undef threadIdx
#undef blockIdx
#undef blockDim
#undef gridDim
#undef warpSize

// Bounds of the section holding every static __shared__ array (GNU ld defines these for a
// section named like an identifier; weak: a build may have none).
extern "C" unsigned char __start_grpo_emu_shared[] __attribute__((weak));
extern "C" unsigned char __stop_grpo_emu_shared[] __attribute__((weak));

namespace grpo_emu {

thread_local Ctx ctx;

namespace {

constexpr size_t kRedZone = 256;        // bytes each side of every allocation
constexpr unsigned char kPoison = 0xff;  // NaN as float / double, -1 as int
constexpr size_t kStack = 128 << 10;     // per emulated thread, plus one guard page
constexpr size_t kGuard = 4096;

thread_local cudaError_t g_last_error = cudaSuccess;
std::string g_detail;
int g_order = kForward;
cudaError_t g_fail_next = cudaSuccess;
uint32_t g_seed = 0;
int64_t g_launches = 0;

// ---- device memory ----
std::mutex g_mem_mu;
struct Alloc {
  unsigned char* base;  // start of the front red zone
  size_t bytes;
};
std::map<uintptr_t, Alloc> g_allocs;  // keyed by the user pointer
int64_t g_live_bytes = 0;

cudaError_t set_error(cudaError_t e, const std::string& detail = std::string()) {
  if (e != cudaSuccess) {
    g_last_error = e;
    if (!detail.empty()) {
      g_detail = detail;
      std::fprintf(stderr, "[cuda emu] %s\n", detail.c_str());
    }
  }
  return e;
}

// The allocation holding [p, p + bytes), or null.
const Alloc* find_alloc(const void* p, size_t bytes) {
  uintptr_t u = reinterpret_cast<uintptr_t>(p);
  auto it = g_allocs.upper_bound(u);
  if (it == g_allocs.begin()) return nullptr;
  --it;
  if (u + bytes > it->first + it->second.bytes) return nullptr;
  return &it->second;
}

// Checks every allocation's red zones; reports (and repairs) the first damaged one.
cudaError_t check_red_zones() {
  std::lock_guard<std::mutex> g(g_mem_mu);
  for (auto& kv : g_allocs) {
    const Alloc& a = kv.second;
    unsigned char* zones[2] = {a.base, a.base + kRedZone + a.bytes};
    for (int z = 0; z < 2; ++z) {
      for (size_t i = 0; i < kRedZone; ++i) {
        if (zones[z][i] != kPoison) {
          long off = z == 0 ? -static_cast<long>(kRedZone - i) : static_cast<long>(a.bytes + i);
          std::memset(zones[z], kPoison, kRedZone);
          return set_error(cudaErrorIllegalAddress, "out-of-bounds write: byte offset " + std::to_string(off) +
                                                        " of a " + std::to_string(a.bytes) + "-byte allocation");
        }
      }
    }
  }
  return cudaSuccess;
}

// ---- fibers ----
// A context switch on x86-64 is a few instructions (callee-saved registers, the FP control
// words, the stack pointer): glibc's swapcontext also saves the signal mask with a system call,
// which made emulated barriers ~20x slower. Other targets use ucontext.
#if defined(__x86_64__)
extern "C" void grpo_emu_switch(void** save_sp, void* load_sp);
asm(R"(
  .text
  .p2align 4
  .globl grpo_emu_switch
  .hidden grpo_emu_switch
  .type grpo_emu_switch, @function
grpo_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size grpo_emu_switch, .-grpo_emu_switch
)");
struct Context {
  void* sp = nullptr;
};
#else
struct Context {
  ucontext_t uc;
};
#endif

enum State : int { kReady, kAtBlock, kAtWarp, kDone };

struct Fiber {
  Context ctx;
  State state;
  uint3 tid;
  unsigned lane, warp;
};

struct Warp {
  uint64_t slot[32];
  unsigned valid;
  bool clear_on_release;
};

struct Block {
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  Context sched;
  int cur = 0;
  const std::function<void()>* body = nullptr;
  bool failed = false;
  std::string why;
};

thread_local Block* g_block = nullptr;
std::vector<unsigned char*> g_stacks;
std::mutex g_launch_mu;  // one launch at a time: __shared__ is static

unsigned char* stack_for(size_t i) {
  while (g_stacks.size() <= i) {
    void* p = mmap(nullptr, kStack + kGuard, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    mprotect(p, kGuard, PROT_NONE);  // stack overflow faults instead of corrupting a neighbour
    g_stacks.push_back(static_cast<unsigned char*>(p));
  }
  return g_stacks[i];
}

void fiber_body() {
  Block* b = g_block;
  try {
    (*b->body)();
  } catch (...) {
    b->failed = true;
    b->why = "exception thrown in a kernel";
  }
  b->fibers[b->cur].state = kDone;
}

void switch_to(Context& save, Context& load) {
#if defined(__x86_64__)
  grpo_emu_switch(&save.sp, load.sp);
#else
  swapcontext(&save.uc, &load.uc);
#endif
}

#if defined(__x86_64__)
[[noreturn]] void fiber_start() {
  fiber_body();
  Block* b = g_block;
  grpo_emu_switch(&b->fibers[b->cur].ctx.sp, b->sched.sp);  // never resumed
  __builtin_unreachable();
}
#endif

// A fresh context that runs fiber_body on stack [lo, lo + size) and then returns to the scheduler.
void make_fiber(Context& c, unsigned char* lo, size_t size, Context& sched) {
#if defined(__x86_64__)
  (void)sched;
  uintptr_t top = (reinterpret_cast<uintptr_t>(lo) + size) & ~uintptr_t(15);
  auto* sp = reinterpret_cast<uint64_t*>(top - 16);  // 16-aligned slot: fiber_start is entered as if called
  sp[0] = reinterpret_cast<uint64_t>(&fiber_start);
  sp -= 6;  // rbp rbx r12 r13 r14 r15
  for (int i = 0; i < 6; ++i) sp[i] = 0;
  sp -= 1;  // mxcsr and the x87 control word of the scheduler's thread
  uint32_t mx;
  uint16_t cw;
  asm volatile("stmxcsr %0" : "=m"(mx));
  asm volatile("fnstcw %0" : "=m"(cw));
  std::memcpy(reinterpret_cast<unsigned char*>(sp), &mx, 4);
  std::memcpy(reinterpret_cast<unsigned char*>(sp) + 4, &cw, 2);
  c.sp = sp;
#else
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = lo;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = &sched.uc;
  makecontext(&c.uc, fiber_body, 0);
#endif
}

void yield_to_scheduler() {
  Block* b = g_block;
  switch_to(b->fibers[b->cur].ctx, b->sched);
}

void make_order(std::vector<int>& order, int n, uint32_t& rng) {
  order.resize(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  if (g_order == kReverse) {
    std::reverse(order.begin(), order.end());
  } else if (g_order == kShuffle) {
    for (int i = n - 1; i > 0; --i) {
      rng = rng * 1664525u + 1013904223u;
      int j = static_cast<int>((rng >> 8) % static_cast<uint32_t>(i + 1));
      std::swap(order[i], order[j]);
    }
  }
}

// Runs one block to completion; false (with b.why) on a barrier divergence.
bool run_block(Block& b, uint32_t& rng) {
  const int n = static_cast<int>(b.fibers.size());
  std::vector<int> order;
  for (;;) {
    make_order(order, n, rng);
    for (int t : order) {
      if (b.fibers[t].state != kReady) continue;
      Fiber& f = b.fibers[t];
      ctx.tid = f.tid;
      ctx.lane = f.lane;
      ctx.warp = f.warp;
      b.cur = t;
      switch_to(b.sched, f.ctx);
      if (b.failed) return false;
    }
    // Everyone is waiting or done. Release complete warps first, then the block barrier.
    bool released = false;
    for (size_t w = 0; w < b.warps.size(); ++w) {
      int live = 0, waiting = 0;
      size_t end = std::min<size_t>((w + 1) * 32, b.fibers.size());
      for (size_t t = w * 32; t < end; ++t) {
        if (b.fibers[t].state != kDone) ++live;
        if (b.fibers[t].state == kAtWarp) ++waiting;
      }
      if (waiting > 0 && waiting == live) {
        for (size_t t = w * 32; t < end; ++t)
          if (b.fibers[t].state == kAtWarp) b.fibers[t].state = kReady;
        if (b.warps[w].clear_on_release) {
          b.warps[w].valid = 0;
          b.warps[w].clear_on_release = false;
        }
        released = true;
      }
    }
    if (released) continue;
    int live = 0, at_block = 0;
    for (auto& f : b.fibers) {
      if (f.state != kDone) ++live;
      if (f.state == kAtBlock) ++at_block;
    }
    if (live == 0) return true;
    if (at_block == live) {
      for (auto& f : b.fibers)
        if (f.state == kAtBlock) f.state = kReady;
      continue;
    }
    b.why = "barrier divergence: some threads wait at __syncthreads while others of the block wait at a warp operation";
    return false;
  }
}

void wait_warp(bool clear) {
  Block* b = g_block;
  Fiber& f = b->fibers[b->cur];
  if (clear) b->warps[f.warp].clear_on_release = true;
  f.state = kAtWarp;
  yield_to_scheduler();
}

}  // namespace

void set_order(int order, uint32_t seed) {
  g_order = order;
  g_seed = seed;
}
int order() { return g_order; }
void fail_next_launch(cudaError_t err) { g_fail_next = err; }
int64_t launches() { return g_launches; }

int64_t live_bytes() {
  std::lock_guard<std::mutex> g(g_mem_mu);
  return g_live_bytes;
}
int64_t live_allocs() {
  std::lock_guard<std::mutex> g(g_mem_mu);
  return static_cast<int64_t>(g_allocs.size());
}

void syncthreads() {
  Block* b = g_block;
  b->fibers[b->cur].state = kAtBlock;
  yield_to_scheduler();
}

void syncwarp() { wait_warp(false); }

void threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

bool warp_exchange(uint64_t v, unsigned src, uint64_t* out) {
  Block* b = g_block;
  Fiber& f = b->fibers[b->cur];
  Warp& w = b->warps[f.warp];
  w.slot[f.lane] = v;
  w.valid |= 1u << f.lane;
  wait_warp(false);
  bool ok = src < 32 && ((w.valid >> src) & 1u);
  if (ok) *out = w.slot[src];
  wait_warp(true);
  return ok;
}

unsigned warp_ballot(bool pred) {
  Block* b = g_block;
  Fiber& f = b->fibers[b->cur];
  Warp& w = b->warps[f.warp];
  w.slot[f.lane] = pred ? 1 : 0;
  w.valid |= 1u << f.lane;
  wait_warp(false);
  unsigned m = 0;
  for (unsigned l = 0; l < 32; ++l)
    if (((w.valid >> l) & 1u) && w.slot[l]) m |= 1u << l;
  wait_warp(true);
  return m;
}

unsigned active_mask() {
  Block* b = g_block;
  unsigned w = b->fibers[b->cur].warp, m = 0;
  for (unsigned l = 0; l < 32; ++l) {
    size_t t = w * 32 + l;
    if (t < b->fibers.size() && b->fibers[t].state != kDone) m |= 1u << l;
  }
  return m;
}

cudaError_t launch(dim3 grid, dim3 block, size_t shmem, cudaStream_t, const std::function<void()>& body) {
  uint64_t nthreads = uint64_t(block.x) * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || nthreads == 0 || nthreads > 1024 || shmem > (228u << 10))
    return set_error(cudaErrorInvalidConfiguration, "invalid launch configuration");
  std::lock_guard<std::mutex> lock(g_launch_mu);
  ++g_launches;
  if (g_fail_next != cudaSuccess) {
    cudaError_t e = g_fail_next;
    g_fail_next = cudaSuccess;
    return set_error(e, "injected launch failure");
  }
  std::vector<unsigned char> dyn(shmem + 16);
  unsigned char* dyn_aligned = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(dyn.data()) + 15) & ~uintptr_t(15));
  Block b;
  b.body = &body;
  b.fibers.resize(nthreads);
  b.warps.resize((nthreads + 31) / 32);
  for (size_t i = 0; i < nthreads; ++i) stack_for(i);
  if (g_stacks.size() < nthreads) return set_error(cudaErrorMemoryAllocation, "no memory for emulated thread stacks");
  Block* saved = g_block;
  g_block = &b;
  ctx.bdim = block;
  ctx.gdim = grid;
  uint32_t rng = g_seed * 2654435761u + 12345u;
  cudaError_t st = cudaSuccess;
  for (unsigned bz = 0; bz < grid.z && st == cudaSuccess; ++bz)
    for (unsigned by = 0; by < grid.y && st == cudaSuccess; ++by)
      for (unsigned bx = 0; bx < grid.x && st == cudaSuccess; ++bx) {
        ctx.bid = {bx, by, bz};
        std::memset(dyn_aligned, kPoison, shmem);
        if (__start_grpo_emu_shared && __stop_grpo_emu_shared > __start_grpo_emu_shared)
          std::memset(__start_grpo_emu_shared, kPoison, static_cast<size_t>(__stop_grpo_emu_shared - __start_grpo_emu_shared));
        ctx.dyn_shared = dyn_aligned;
        for (auto& w : b.warps) {
          w.valid = 0;
          w.clear_on_release = false;
        }
        for (size_t i = 0; i < nthreads; ++i) {
          Fiber& f = b.fibers[i];
          f.state = kReady;
          f.tid = {static_cast<unsigned>(i % block.x), static_cast<unsigned>((i / block.x) % block.y),
                   static_cast<unsigned>(i / (uint64_t(block.x) * block.y))};
          f.lane = static_cast<unsigned>(i % 32);
          f.warp = static_cast<unsigned>(i / 32);
          make_fiber(f.ctx, g_stacks[i] + kGuard, kStack, b.sched);
        }
        if (!run_block(b, rng)) st = set_error(cudaErrorLaunchFailure, b.why);
      }
  g_block = saved;
  if (st != cudaSuccess) return st;
  return check_red_zones();
}

}  // namespace grpo_emu

using grpo_emu::set_error;

// ---- cudart -------------------------------------------------------------------------------------
namespace {
constexpr size_t kEmuTotal = size_t(16) << 30;
struct StreamPool {
  std::mutex mu;
  int next = 1;
};
StreamPool g_streams;
double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int dev) {
  if (dev != 0) return set_error(cudaErrorInvalidDevice);
  std::memset(p, 0, sizeof(*p));
  std::snprintf(p->name, sizeof(p->name), "grpo-kernels CUDA emulator (CPU)");
  p->totalGlobalMem = kEmuTotal;
  p->sharedMemPerBlock = 48 << 10;
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = 4;
  p->maxThreadsPerBlock = 1024;
  p->warpSize = 32;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int dev) { return dev == 0 ? cudaSuccess : set_error(cudaErrorInvalidDevice); }
cudaError_t cudaGetDevice(int* dev) {
  *dev = 0;
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = CUDART_VERSION;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
  *v = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  using namespace grpo_emu;
  *p = nullptr;
  if (bytes > kEmuTotal) return set_error(cudaErrorMemoryAllocation);
  auto* base = static_cast<unsigned char*>(std::malloc(bytes + 2 * kRedZone));
  if (!base) return set_error(cudaErrorMemoryAllocation);
  std::memset(base, kPoison, bytes + 2 * kRedZone);  // fresh device memory holds garbage
  *p = base + kRedZone;
  std::lock_guard<std::mutex> g(g_mem_mu);
  g_allocs[reinterpret_cast<uintptr_t>(*p)] = {base, bytes};
  g_live_bytes += static_cast<int64_t>(bytes);
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  using namespace grpo_emu;
  if (!p) return cudaSuccess;
  std::lock_guard<std::mutex> g(g_mem_mu);
  auto it = g_allocs.find(reinterpret_cast<uintptr_t>(p));
  if (it == g_allocs.end()) return set_error(cudaErrorInvalidValue, "cudaFree of a pointer cudaMalloc did not return");
  g_live_bytes -= static_cast<int64_t>(it->second.bytes);
  std::free(it->second.base);
  g_allocs.erase(it);
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void** p, size_t bytes) {
  *p = std::malloc(bytes ? bytes : 1);
  return *p ? cudaSuccess : set_error(cudaErrorMemoryAllocation);
}
cudaError_t cudaFreeHost(void* p) {
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_b, size_t* total_b) {
  *total_b = kEmuTotal;
  *free_b = kEmuTotal - static_cast<size_t>(grpo_emu::live_bytes());
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  using namespace grpo_emu;
  if (bytes == 0) return cudaSuccess;
  {
    std::lock_guard<std::mutex> g(g_mem_mu);
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if ((dst_dev && !find_alloc(dst, bytes)) || (src_dev && !find_alloc(src, bytes)))
      return set_error(cudaErrorInvalidValue, "cudaMemcpy outside a device allocation");
  }
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, kind);
}
cudaError_t cudaMemset(void* p, int v, size_t bytes) {
  using namespace grpo_emu;
  if (bytes == 0) return cudaSuccess;
  {
    std::lock_guard<std::mutex> g(g_mem_mu);
    if (!find_alloc(p, bytes)) return set_error(cudaErrorInvalidValue, "cudaMemset outside a device allocation");
  }
  std::memset(p, v, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int v, size_t bytes, cudaStream_t) { return cudaMemset(p, v, bytes); }
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  std::lock_guard<std::mutex> g(g_streams.mu);
  *s = new CUstream_st{g_streams.next++};
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  delete s;
  return cudaSuccess;
}
// Work runs synchronously at the call, so a stream is always idle.
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamQuery(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaLaunchHostFunc(cudaStream_t, cudaHostFn_t fn, void* data) {
  fn(data);
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new CUevent_st{0};
  return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return cudaEventCreate(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  e->t = now_ms();
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  *ms = static_cast<float>(b->t - a->t);
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaGetLastError() {
  cudaError_t e = grpo_emu::g_last_error;
  grpo_emu::g_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return grpo_emu::g_last_error; }

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorAssert: return "cudaErrorAssert";
  }
  return "cudaErrorUnknown";
}
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorAssert: return "device-side assert triggered";
  }
  return "unknown error";
}
