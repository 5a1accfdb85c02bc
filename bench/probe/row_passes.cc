// Per-pass timings of the fused loss's row kernels (native/kernels/row_kernels_impl.h, the
// avx512 build) outside Node, to see what bounds grpoLossFromLogits on a machine: memory
// (a plain read / NT copy of the same bytes) or the exp work (the same kernels over one row
// that stays in L1/L2). Threads split the rows statically; wall: the median of reps, CPU: the least.
// Build and run (from the repo root; ~1 min on an idle 2-core box):
//   g++ -O3 -std=c++17 -fno-math-errno -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx2 -mfma \
//     -mf16c -mprefer-vector-width=512 -pthread bench/probe/row_passes.cc -o /tmp/row_passes
//   /tmp/row_passes [N=512] [V=151936] [threads=1] [reps=5] [dtype=0 (f32) | 1 (bf16)]
// Prints ms per pass and ns per element per thread (CPU-side cost: compare with the 1-thread
// read / copy rows to see whether a pass is bound by memory or by its arithmetic).
#define GRPO_ROWK_NS isa_probe
#define GRPO_ROWK_ISA "avx512"
#include "../../native/kernels/row_kernels_impl.h"

#include <sys/mman.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>
#include <vector>

using namespace grpo;
using K = grpo::isa_probe::vf;

static double cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}
static double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int main(int argc, char** argv) {
  const int64_t N = argc > 1 ? atoll(argv[1]) : 512, V = argc > 2 ? atoll(argv[2]) : 151936;
  const int T = argc > 3 ? atoi(argv[3]) : 1, R = argc > 4 ? atoi(argv[4]) : 5, dt = argc > 5 ? atoi(argv[5]) : 0;
  const int64_t es = dt == 0 ? 4 : 2, rb = V * es;
  char* in = static_cast<char*>(aligned_alloc(4096, N * rb + 4096));
  char* out = static_cast<char*>(aligned_alloc(4096, N * rb + 4096));
  {
    uint32_t s = 12345;
    for (int64_t i = 0; i < N * V; ++i) {
      s = s * 1103515245u + 12345u;
      float x = (s / 4294967296.0f) * 8 - 4;
      if (dt == 0) reinterpret_cast<float*>(in)[i] = x;
      else { uint32_t u; std::memcpy(&u, &x, 4); reinterpret_cast<uint16_t*>(in)[i] = u >> 16; }
    }
    std::memset(out, 0, N * rb);
  }
  const RowKernels& k = isa_probe::kTable;
  const int64_t nblk = (V + kRowBlock - 1) / kRowBlock;
  // Per-thread scratch: one e row (L2-resident) and block maxima/factors.
  struct Scr { float* e; float* e2; float* bmax; float* fac; };
  std::vector<Scr> scr(T);
  for (auto& s : scr) {
    s.e = static_cast<float*>(aligned_alloc(64, V * 4 + 64));
    s.e2 = static_cast<float*>(aligned_alloc(64, V * 4 + 64));
    s.bmax = static_cast<float*>(aligned_alloc(64, nblk * 4 + 64));
    s.fac = static_cast<float*>(aligned_alloc(64, nblk * 4 + 64));
    std::fill(s.fac, s.fac + nblk, 1e-6f);
  }
  volatile double sink = 0;
  auto run = [&](const char* name, int64_t bytes_per_row, std::function<void(int, int64_t)> row_fn) {
    std::vector<double> t, c;
    for (int r = 0; r <= R; ++r) {
      double t0 = now_ms();
      std::vector<std::thread> th;
      std::vector<double> cpu(T);
      for (int w = 0; w < T; ++w)
        th.emplace_back([&, w] {
          double c0 = cpu_ms();
          int64_t b = N * w / T, e = N * (w + 1) / T;
          for (int64_t n = b; n < e; ++n) row_fn(w, n);
          k.store_fence();
          cpu[w] = cpu_ms() - c0;
        });
      for (auto& x : th) x.join();
      if (r) {  // the first run warms up
        t.push_back(now_ms() - t0);
        double cs = 0;
        for (double x : cpu) cs += x;
        c.push_back(cs);
      }
    }
    std::sort(t.begin(), t.end());
    std::sort(c.begin(), c.end());
    double ms = t[t.size() / 2], cms = c[0];
    // CPU ms: summed over the threads, the least of the reps (a shared machine stretches wall
    // time, not CPU time, and other processes evicting our cache lines only add to it).
    printf("%-46s wall %8.2f ms %6.1f GB/s | cpu %8.2f ms  %.3f ns/elem  %6.1f GB/s per busy thread\n", name, ms,
           bytes_per_row * N / ms / 1e6, cms, cms * 1e6 / (N * V), bytes_per_row * N / cms / 1e6);
    fflush(stdout);
  };
  printf("N=%lld V=%lld dtype=%s threads=%d median of %d\n", (long long)N, (long long)V, dt ? "bf16" : "f32", T, R);
  // Memory only.
  run("read (sum of the logits)", rb, [&](int, int64_t n) {
    const K* p = reinterpret_cast<const K*>(in + n * rb);
    K a{}, b{};
    for (int64_t i = 0; i + 1 < rb / 64; i += 2) { a += p[i]; b += p[i + 1]; }
    sink = sink + (a + b)[0];
  });
  run("copy (NT stores)", 2 * rb, [&](int, int64_t n) {
    const K* p = reinterpret_cast<const K*>(in + n * rb);
    float* q = reinterpret_cast<float*>(out + n * rb);
    for (int64_t i = 0; i < rb / 64; ++i) _mm512_stream_ps(q + 16 * i, (__m512)p[i]);
  });
  // Compute only: one row, cache-resident, repeated.
  run("stats, one cached row (exp work)", 0, [&](int w, int64_t) {
    sink = sink + k.stats(dt, in + w * rb, V, 1.0f, 3).zmax;
  });
  run("exp_scale_store, cached row -> cached row", 0, [&](int w, int64_t) {
    k.exp_scale_store(dt, in + w * rb, V, 4.0f, 1.0f, 1e-6f, 3, 0.5f, scr[w].e, false);
  });
  run("scale e*fac, cached e row -> cached row", 0, [&](int w, int64_t) {
    k.pipe_step(dt, nullptr, V, 1.0f, 3, nullptr, nullptr, scr[w].e, scr[w].fac, 3, 0.5f, scr[w].e2, false, false);
  });
  // The passes over memory.
  run("pass A: stats (1 read)", rb, [&](int, int64_t n) { sink = sink + k.stats(dt, in + n * rb, V, 1.0f, 3).zmax; });
  run("pass B: exp_scale_store NT (1 read + 1 write)", 2 * rb, [&](int, int64_t n) {
    k.exp_scale_store(dt, in + n * rb, V, 4.0f, 1.0f, 1e-6f, 3, 0.5f, out + n * rb, true);
  });
  run("L2 scratch: stats+e to scratch, then e*fac NT", 2 * rb, [&](int w, int64_t n) {
    Scr& s = scr[w];
    RowStats st = k.pipe_step(dt, in + n * rb, V, 1.0f, 3, s.e, s.bmax, nullptr, nullptr, 0, 0.f, nullptr, true, false);
    sink = sink + st.zmax;
    k.pipe_step(dt, nullptr, V, 1.0f, 3, nullptr, nullptr, s.e, s.fac, 3, 0.5f, out + n * rb, true, false);
  });
  std::vector<int> cur(T, 0);
  run("pipelined, 2 scratch rows (current one-pass)", 2 * rb, [&](int w, int64_t n) {
    Scr& s = scr[w];
    const int64_t b = N * w / T;
    float* ec = cur[w] ? s.e2 : s.e;
    float* ep = cur[w] ? s.e : s.e2;
    RowStats st = k.pipe_step(dt, in + n * rb, V, 1.0f, 3, ec, s.bmax, n > b ? ep : nullptr, s.fac, 3, 0.5f,
                              n > b ? out + (n - 1) * rb : nullptr, true, false);
    sink = sink + st.zmax;
    cur[w] ^= 1;
  });
  return 0;
}
