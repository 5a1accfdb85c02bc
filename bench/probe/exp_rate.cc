// What one core can do per 16 logits, to see whether the fused loss over bfloat16 logits can
// reach its memory floor on a machine (issue 8; bench/results/fused-floor.md): the core clock
// (a chain of dependent adds), the throughput of the zmm instructions the row kernels' exp is
// made of, the exp itself over an L1-resident row, and a table lookup by gather (the only exp
// cheaper in instructions: exp of a bfloat16 logit read from a 65536-entry table).
// Build and run (from the repo root; ~10 s, 1 thread):
//   g++ -O2 -std=c++17 -fno-math-errno -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx2 -mfma \
//     -mf16c -mprefer-vector-width=512 bench/probe/exp_rate.cc -o /tmp/exp_rate && /tmp/exp_rate
#define GRPO_ROWK_NS isa_probe
#define GRPO_ROWK_ISA "avx512"
#include "../../native/kernels/row_kernels_impl.h"

#include <time.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

using namespace grpo::isa_probe;

static double cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

// 12 independent chains of one instruction: its throughput in instructions per cycle (latency
// hidden as long as latency <= 12 / throughput).
#define R12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define DECL(k) __m512 a##k = _mm512_set1_ps(1.0f + k * 1e-3f);
#define BAR(k) asm volatile("" : "+v"(a##k));
#define RATE(name, OP)                                        \
  {                                                           \
    double t = cpu_ns();                                      \
    for (long i = 0; i < kIters; ++i) { R12(OP) R12(BAR) }    \
    double e = cpu_ns() - t;                                  \
    printf("%-28s %.2f per cycle\n", name, 12.0 * kIters / e / ghz); \
  }

int main() {
  // Clock: one dependent integer add per cycle.
  const long kChain = 400000000;
  double t = cpu_ns();
  long x = 0;
  for (long i = 0; i < kChain; ++i) asm volatile("add $1, %0" : "+r"(x));
  const double ghz = kChain / (cpu_ns() - t);
  printf("core clock ~%.2f GHz (dependent adds)\n", ghz);

  const long kIters = 50000000;
  R12(DECL)
  const __m512 m = _mm512_set1_ps(0.9999f), c = _mm512_set1_ps(1e-5f);
#define F(k) a##k = _mm512_fmadd_ps(a##k, m, c);
#define A(k) a##k = _mm512_add_ps(a##k, c);
#define RS(k) a##k = _mm512_roundscale_ps(a##k, 0);
#define SC(k) a##k = _mm512_scalef_ps(a##k, c);
  RATE("zmm vfmadd", F)
  RATE("zmm vaddps", A)
  RATE("zmm vrndscaleps", RS)
  RATE("zmm vscalefps", SC)

  // The row kernels' exp (vexp_clamped: 10 zmm instructions per 16 values) over a row in L1,
  // four independent sums.
  const int n = 2048, R = 100000;
  std::vector<float> d(n);
  for (int i = 0; i < n; ++i) d[i] = -8.0f * static_cast<float>(i % 977) / 977.0f;
  {
    vf s0 = vf{}, s1 = vf{}, s2 = vf{}, s3 = vf{};
    double t0 = cpu_ns();
    for (int r = 0; r < R; ++r) {
      for (int i = 0; i < n; i += 64) {
        s0 += vexp_clamped(load<0>(d.data(), i));
        s1 += vexp_clamped(load<0>(d.data(), i + 16));
        s2 += vexp_clamped(load<0>(d.data(), i + 32));
        s3 += vexp_clamped(load<0>(d.data(), i + 48));
      }
      asm volatile("" ::"v"(s0), "v"(s1), "v"(s2), "v"(s3) : "memory");
    }
    double ns = (cpu_ns() - t0) / R / n;
    printf("%-28s %.3f ns per value, %.1f cycles per 16\n", "exp (row kernels)", ns, ns * 16 * ghz);
  }

  // exp of a bfloat16 value by table: one vpgatherdd per 16 logits from 64K floats, the indices
  // those of uniform [-4, 4) bfloat16 logits (the table's touched part stays in L1).
  {
    std::vector<float> table(65536);
    for (uint32_t b = 0; b < 65536; ++b) {
      uint32_t u = b << 16;
      float z;
      std::memcpy(&z, &u, 4);
      table[b] = std::exp(std::fmin(z, 80.0f));
    }
    std::vector<uint16_t> h(n);
    std::mt19937 g(1);
    std::uniform_real_distribution<float> U(-4, 4);
    for (int i = 0; i < n; ++i) {
      float f = U(g);
      uint32_t u;
      std::memcpy(&u, &f, 4);
      h[i] = static_cast<uint16_t>(u >> 16);
    }
    __m512 s0 = _mm512_setzero_ps(), s1 = s0;
    double t0 = cpu_ns();
    for (int r = 0; r < R; ++r) {
      for (int i = 0; i < n; i += 32) {
        __m512i i0 = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(&h[i])));
        __m512i i1 = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(&h[i + 16])));
        s0 = _mm512_add_ps(s0, _mm512_i32gather_ps(i0, table.data(), 4));
        s1 = _mm512_add_ps(s1, _mm512_i32gather_ps(i1, table.data(), 4));
      }
      asm volatile("" ::"v"(s0), "v"(s1) : "memory");
    }
    double ns = (cpu_ns() - t0) / R / n;
    printf("%-28s %.3f ns per value, %.1f cycles per 16\n", "exp by table (vpgatherdd)", ns, ns * 16 * ghz);
  }
  return 0;
}
