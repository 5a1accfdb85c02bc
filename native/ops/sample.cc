// sample: spec §9, CPU kernel. Shapes: R rows, V vocab entries; logits z [R, V] row-major.
//
// ============================== THE ALGORITHM (the contract) ==============================
// Every backend computes exactly this; the CUDA kernel must give the same token for the same
// (logits, options, seed, rowId, step). Helpers E, x_v and key are in native/common/sample_math.h.
// Per row b, with τ = temperature[b], k = topK[b], p = topP[b], m = minP[b],
// rowId = rowIds ? rowIds[b] : b:
//
// 0. Load. z_v converted to float32 exactly (bf16/f16). u_v = z_v / τ (IEEE float32 division)
//    when τ > 0; u_v = z_v when τ = 0 (greedy). A NaN u_v becomes -inf (never drawn, adds
//    nothing to any sum). M = max_v u_v.
//    Degenerate row (M is ±inf, i.e. every u is -inf/NaN or some u is +inf): token = the smallest
//    v with u_v == M; logp = truncLogp = NaN. Nothing below applies.
//    Every mass below uses e_v = E(u_v - M) (float32 subtraction, then E: bit-exact), so
//    e_max = E(0) = 1. S = Σ_v e_v over the whole vocab, accumulated in double (any order).
// 1. Greedy (τ = 0, or τ < 0 / NaN, which the TS layer never passes): token = the smallest v
//    with u_v == M; logp = -log(S) (this is log softmax(z)[token], τ = 1); truncLogp = 0.
// 2. Kept set, three filters, each a set of the form {u_v >= threshold} (ties always kept):
//    top-k (on when 0 < k < V): T_k = the k-th largest u_v counting multiplicity;
//      K1 = {v : u_v >= T_k}. Off: K1 = all v.
//    top-p (on when p < 1): list K1 by u descending (order among equal u is irrelevant: equal u
//      have equal e); c_i = e_(1) + ... + e_(i) summed in double in that order;
//      S1 = Σ_{K1} e_v (double; with top-k on, S1 = c_|K1|; with it off, S1 = S);
//      i* = the smallest i with c_i >= (double)p * S1 (i* = |K1| if rounding leaves none);
//      K2 = {v in K1 : u_v >= u_(i*)}. Off: K2 = K1.
//    min-p (on when m > 0; m > 1 is treated as 1): K3 = {v in K2 : e_v >= m} (float compare;
//      e_v/e_max = p_v/p_max). Off: K3 = K2. K3 always holds the argmax of u (e = 1).
// 3. Draw (Gumbel-max, an exact draw from the renormalised kept distribution):
//      x_v = word ((v >> 4) & 3) of philox4x32_10(counter {((v >> 6) << 4) | (v & 15), rowId,
//            step, 0}, key {seedLo, seedHi})
//      key_v = (double)u_v - log(-log((x_v + 0.5) * 2^-32))      (double precision log)
//    token = argmax over v in K3 of key_v; equal keys -> the smallest v.
//    The draw depends only on (seed, rowId, step, v) and the kept set: never on thread count,
//    batch composition or backend.
// 4. logp = (float)(((double)u_tok - (double)M) - log(S))        (log softmax(u) over all V)
//    truncLogp = (float)(((double)u_tok - (double)M) - log(S3)), S3 = Σ_{K3} e_v in double
//    (only when requested).
// Backends may differ only where a double sum or a libm log differs in its last bit AND that
// flips a top-p comparison or a Gumbel-key comparison: ties to ~1e-15 relative.
// ==========================================================================================
//
// How this CPU kernel computes it fast (none of this changes the result; the generic scalar
// path, GRPO_CPU_ISA=generic, computes the algorithm literally and the tests check that both
// give the same tokens):
// - pass A: load, divide, NaN -> -inf, store u to a per-thread scratch row, max (AVX-512).
//   float32 logits at τ = 1 (or greedy) with no NaN are used in place (u == z): no copy.
// - pass B: S = Σ E(u - M) with a SIMD E (the same fmaf sequence as the scalar E), double
//   accumulators.
// - top-k: a first threshold from a strided sample of 512 values (expected ~4·max(k, 128)
//   entries above it), one SIMD pass collecting the entries >= it, nth_element on those. Any
//   threshold with at least k entries above it is a lower bound of T_k, so nothing is dropped;
//   if the sample was unlucky, a running threshold takes over (a buffer of entries >= it; when
//   full, its k-th largest becomes the new threshold). No sort of V; only the kept are sorted.
// - top-p without top-k: pass B also sums (in float, approximately) the mass above 12 cut points
//   u - M >= -d; the smallest cut whose mass surely reaches p·S is collected with its E values,
//   radix-sorted (stable, by u descending) and cut exactly as in step 2 (same E values, same
//   order, same double prefix sums as the literal algorithm). If rounding made the cut too
//   small, the chunked selection of the generic path (top 256, 2048, ... sorted) takes over.
// - draw: start from the exact key of the argmax of u (always kept). An entry can only win if
//   u_v + Ghi(x_v) reaches the best key so far, where Ghi is an upper bound of -log(-log U)
//   over a bucket of the random bits (with rigorous float margins): a 4096-bucket table (top 12
//   bits) in scalar code, two 32-entry in-register tables (top 5 bits, then the next 5 inside
//   the top bucket) in the AVX-512 scan; only those entries get an exact double key. Over a
//   list (top-k/top-p, <= 16384 entries) Philox runs 16 entries at a time; otherwise a SIMD
//   scan over V runs one Philox call per lane for 64 entries and skips whole 64-entry blocks
//   with no possible member or whose max u + max G cannot reach the best.
// - CPUs with AVX2 + FMA but not AVX-512: passes A and B on 8 lanes (exp8, the same operation
//   sequence again), the rest as scalar code compiled for AVX2 (fmaf inlined), the same bounded
//   draw with Philox on 8 lanes, top-p without top-k by chunked selection.
// Scratch buffers live per worker thread (thread_local), grow once, and are reused.
#include "sample.h"

// GCC 12 warns about _mm512_undefined_* inside the intrinsic headers once they are inlined
// into masked loads: false positives.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#if defined(__x86_64__) || defined(__i386__)
#define GRPO_SAMPLE_X86 1
#include <immintrin.h>
#else
#define GRPO_SAMPLE_X86 0  // other CPUs: the generic path only
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "../common/cpu.h"
#include "../common/half.h"
#include "../common/sample_math.h"
#include "../common/threadpool.h"

namespace grpo {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Pass B for a top-p row without top-k: also the approximate (float) mass of every entry with
// u - M >= -kHistD[j], for 12 cut points; only used to choose how many entries to collect.
// (12 accumulators + 12 constants + the loop's own values fit the 32 vector registers.)
constexpr int kHist = 12;
constexpr float kHistD[kHist] = {0.5f, 1, 1.5f, 2, 3, 4, 5, 6, 7.5f, 9, 12, 20};

struct Scratch {
  std::vector<float> u;           // [V] scaled logits of the current row
  std::vector<float> sel_val;     // selection buffer (values)
  std::vector<int32_t> sel_idx;   // selection buffer (indices)
  std::vector<float> tmp;         // nth_element workspace
  std::vector<int32_t> list;      // the kept list, sorted by u descending
  std::vector<uint32_t> cand_x;   // random bits of the listed entries
  std::vector<uint32_t> rkey, rkey2;  // radix sort
  std::vector<int32_t> perm, perm2;
  float hist[kHist];              // top-p: approximate mass above each cut
  double S = 0;                   // the row's whole-vocab mass
};

Scratch& scratch() {
  static thread_local Scratch s;
  return s;
}

// ---- Gumbel bound tables: upper bounds of G(x) = -log(-log((x + 0.5) 2^-32)) over buckets of
// the random bits x, so that u + bound < best key proves an entry cannot win.
struct GumbelTables {
  float hi[4096];  // upper bounds of G over the top 12 bits (scalar lookups)
  // In-register tables for the SIMD scan (a gather is slow): upper bounds over the top 5 bits,
  // and over the next 5 bits inside the top bucket (where G climbs to its maximum, 22.2).
  alignas(64) float hi32[32];
  alignas(64) float hi32top[32];
  float hi_max;
  GumbelTables() {
    auto G = [](uint32_t x) { return -std::log(-std::log(philox_uniform_open(x))); };
    // margins cover libm's last-bit monotonicity and the double -> float rounding
    auto up = [](double b) { return static_cast<float>(b + 1e-6 * (1 + std::fabs(b))); };
    hi_max = -kInf;
    for (uint32_t j = 0; j < 4096; ++j) {
      hi[j] = up(G((j << 20) | 0xFFFFFu));  // G grows with x: the bucket's last x
      hi_max = std::max(hi_max, hi[j]);
    }
    for (uint32_t j = 0; j < 32; ++j) {
      hi32[j] = up(G((j << 27) | 0x7FFFFFFu));
      hi32top[j] = up(G((31u << 27) | (j << 22) | 0x3FFFFFu));
    }
  }
};
const GumbelTables& gtab() {
  static const GumbelTables t;
  return t;
}

// Slack for comparing float sums u + G against a float bound L: both sides carry a rounding of
// at most 2^-24 of their magnitude (|u + G| is within ~25 of |L| wherever it matters).
inline float key_margin(float L) { return std::ldexp(std::fabs(L) + 64.0f, -20); }

// ---------------------------------------------------------------- scalar (generic) kernels
template <int DT>
float load_row_scalar(const void* z, int64_t V, float tau, bool greedy, float* u) {
  float M = -kInf;
  for (int64_t v = 0; v < V; ++v) {
    float x = load_as_float<DT>(z, v);
    if (!greedy) x = x / tau;
    if (x != x) x = -kInf;
    u[v] = x;
    if (x > M) M = x;
  }
  return M;
}

void sum_exp_scalar(const float* u, int64_t V, float M, float m, double* S, double* Sm) {
  double s = 0, sm = 0;
  for (int64_t v = 0; v < V; ++v) {
    float e = sample_exp(u[v] - M);
    s += e;
    if (e >= m) sm += e;
  }
  *S = s;
  *Sm = sm;
}

// Exact key argmax: equal keys -> the smallest v.
struct Best {
  double key = -std::numeric_limits<double>::infinity();
  int64_t v = -1;
  bool offer(double k, int64_t v2) {
    if (v < 0 || k > key || (k == key && v2 < v)) {
      key = k;
      v = v2;
      return true;
    }
    return false;
  }
};

// Exact membership of K3 for the draw: u >= t_list (the top-k/top-p threshold) and, with
// min-p, E(u - M) >= minp.
struct Member {
  const float* u;
  float M, t_list, minp;
  bool use_m;
  bool operator()(int64_t v) const { return u[v] >= t_list && (!use_m || sample_exp(u[v] - M) >= minp); }
};

struct DrawCtx {
  const float* u;
  uint32_t row_id, step, seed_lo, seed_hi;
  float t_poss;  // no member has u < t_poss
};


// ---------------------------------------------------------------- AVX-512 kernels
#if GRPO_SAMPLE_X86
#define GRPO_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))

GRPO_AVX512 inline __m512 load16(const void* z, int DT, int64_t v, __mmask16 mk) {
  if (DT == 0) return _mm512_maskz_loadu_ps(mk, static_cast<const float*>(z) + v);
  __m256i h = _mm256_maskz_loadu_epi16(mk, static_cast<const uint16_t*>(z) + v);
  if (DT == 1) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  return _mm512_cvtph_ps(h);
}

template <int DT>
GRPO_AVX512 float load_row_avx512(const void* z, int64_t V, float tau, bool greedy, float* u) {
  const __m512 vt = _mm512_set1_ps(tau), ninf = _mm512_set1_ps(-kInf);
  __m512 vmax = ninf;
  for (int64_t v = 0; v < V; v += 16) {
    __mmask16 mk = V - v >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (V - v)) - 1);
    __m512 x = load16(z, DT, v, mk);
    if (!greedy) x = _mm512_div_ps(x, vt);
    x = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_ORD_Q), ninf, x);
    _mm512_mask_storeu_ps(u + v, mk, x);
    vmax = _mm512_mask_max_ps(vmax, mk, vmax, x);
  }
  return _mm512_reduce_max_ps(vmax);
}

// Pass A when u = z (float32 logits at τ = 1, or greedy): the max without storing a copy, if
// the row has no NaN (which would have to become -inf). Returns false if it has one.
GRPO_AVX512 bool max_if_no_nan_avx512(const float* z, int64_t V, float* M) {
  __m512 vmax = _mm512_set1_ps(-kInf);
  __mmask16 nan = 0;
  for (int64_t v = 0; v < V; v += 16) {
    __mmask16 mk = V - v >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (V - v)) - 1);
    __m512 x = _mm512_maskz_loadu_ps(mk, z + v);
    nan |= _mm512_mask_cmp_ps_mask(mk, x, x, _CMP_UNORD_Q);
    vmax = _mm512_mask_max_ps(vmax, mk, vmax, x);
  }
  *M = _mm512_reduce_max_ps(vmax);
  return nan == 0;
}

// The SIMD twin of sample_exp: the same operations in the same order.
GRPO_AVX512 inline __m512 exp16(__m512 x) {
  __mmask16 valid = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_GE_OQ);
  x = _mm512_min_ps(x, _mm512_set1_ps(88.0f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  // n is clamped for the bit trick only; lanes below -87 are zeroed anyway
  __m512i ni = _mm512_cvtps_epi32(_mm512_max_ps(n, _mm512_set1_ps(-126.0f)));
  __m512 scale = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(ni, _mm512_set1_epi32(127)), 23));
  return _mm512_maskz_mov_ps(valid, _mm512_mul_ps(p, scale));
}

// Adds the 16 floats of e to two double accumulators (8 lanes each).
GRPO_AVX512 inline void acc16(__m512 e, __m512d& lo, __m512d& hi) {
  lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
  hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
}

// Pass B: S = Σ E(u - M) and (MINP) Sm = Σ_{E >= m} E, in double. Two blocks of 16 per
// iteration into separate accumulators (the adds' latency, not their count, bounds this loop).
template <bool MINP>
GRPO_AVX512 void sum_exp_avx512(const float* u, int64_t V, float M, float m, double* S, double* Sm) {
  const __m512 vM = _mm512_set1_ps(M), vm = _mm512_set1_ps(m);
  __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  int64_t v = 0;
  for (; v + 32 <= V; v += 32) {
    __m512 e0 = exp16(_mm512_sub_ps(_mm512_loadu_ps(u + v), vM));
    __m512 e1 = exp16(_mm512_sub_ps(_mm512_loadu_ps(u + v + 16), vM));
    acc16(e0, a0, a1);
    acc16(e1, a2, a3);
    if (MINP) {
      acc16(_mm512_maskz_mov_ps(_mm512_cmp_ps_mask(e0, vm, _CMP_GE_OQ), e0), b0, b1);
      acc16(_mm512_maskz_mov_ps(_mm512_cmp_ps_mask(e1, vm, _CMP_GE_OQ), e1), b2, b3);
    }
  }
  for (; v < V; v += 16) {
    __mmask16 mk = V - v >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (V - v)) - 1);
    __m512 e = _mm512_maskz_mov_ps(mk, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, u + v), vM)));
    acc16(e, a0, a1);
    if (MINP) acc16(_mm512_maskz_mov_ps(_mm512_cmp_ps_mask(e, vm, _CMP_GE_OQ), e), b0, b1);
  }
  *S = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
  *Sm = MINP ? _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(b0, b1), _mm512_add_pd(b2, b3))) : *S;
}

GRPO_AVX512 void sum_exp_hist_avx512(const float* u, int64_t V, float M, double* S, float* hist) {
  const __m512 vM = _mm512_set1_ps(M);
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
  __m512 h[kHist], nd[kHist];
  for (int j = 0; j < kHist; ++j) {
    h[j] = _mm512_setzero_ps();
    nd[j] = _mm512_set1_ps(-kHistD[j]);
  }
  for (int64_t v = 0; v < V; v += 16) {
    __mmask16 mk = V - v >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (V - v)) - 1);
    __m512 x = _mm512_sub_ps(_mm512_maskz_loadu_ps(mk, u + v), vM);
    __m512 e = _mm512_maskz_mov_ps(mk, exp16(x));
    a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    for (int j = 0; j < kHist; ++j) h[j] = _mm512_mask_add_ps(h[j], _mm512_cmp_ps_mask(x, nd[j], _CMP_GE_OQ), h[j], e);
  }
  *S = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
  for (int j = 0; j < kHist; ++j) hist[j] = _mm512_reduce_add_ps(h[j]);
}

// Every v with u_v - M >= negd (float subtraction, as in E's argument): value, index, E.
GRPO_AVX512 int64_t collect_avx512(const float* u, int64_t V, float M, float negd, float* val, int32_t* idx, float* ev) {
  const __m512 vM = _mm512_set1_ps(M), vd = _mm512_set1_ps(negd);
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  int64_t n = 0;
  for (int64_t v = 0; v < V; v += 16) {
    __mmask16 mk = V - v >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (V - v)) - 1);
    __m512 y = _mm512_maskz_loadu_ps(mk, u + v);
    __m512 x = _mm512_sub_ps(y, vM);
    __mmask16 c = _mm512_mask_cmp_ps_mask(mk, x, vd, _CMP_GE_OQ);
    if (c) {
      _mm512_storeu_ps(val + n, _mm512_maskz_compress_ps(c, y));
      _mm512_storeu_si512(idx + n, _mm512_maskz_compress_epi32(c, _mm512_add_epi32(iota, _mm512_set1_epi32(static_cast<int32_t>(v)))));
      _mm512_storeu_ps(ev + n, _mm512_maskz_compress_ps(c, exp16(x)));
      n += __builtin_popcount(c);
    }
  }
  return n;
}

// Appends (u_v, v) for every v with u_v >= t to the buffers at n; returns the new n.
GRPO_AVX512 int64_t select_append_avx512(const float* u, int64_t b, int64_t e, float t, float* val, int32_t* idx, int64_t n) {
  const __m512 vt = _mm512_set1_ps(t);
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t v = b; v < e; v += 16) {
    __mmask16 mk = e - v >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (e - v)) - 1);
    __m512 x = _mm512_maskz_loadu_ps(mk, u + v);
    __mmask16 c = _mm512_mask_cmp_ps_mask(mk, x, vt, _CMP_GE_OQ);
    if (c) {
      // compress in registers, then a full store (the buffers have 16 slack): a compress
      // straight to memory is microcoded and very slow on Zen 4
      _mm512_storeu_ps(val + n, _mm512_maskz_compress_ps(c, x));
      _mm512_storeu_si512(idx + n, _mm512_maskz_compress_epi32(c, _mm512_add_epi32(iota, _mm512_set1_epi32(static_cast<int32_t>(v)))));
      n += __builtin_popcount(c);
    }
  }
  return n;
}

// Philox 4x32-10 on 16 lanes at once (counter lanes c0..c3).
GRPO_AVX512 inline void mulhilo16(__m512i a, __m512i M, __m512i* hi, __m512i* lo) {
  __m512i ev = _mm512_mul_epu32(a, M);
  __m512i od = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), M);
  *hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(ev, 32), od);
  *lo = _mm512_mask_blend_epi32(0xAAAA, ev, _mm512_slli_epi64(od, 32));
}

// Philox 4x32-10 on 16 lanes whose counters are {c0 (per lane), row, step, 0}: words 1-3 are the
// same in every lane, so the first round's second product is one scalar multiply.
// Returns the four output words in x[0..3].
GRPO_AVX512 inline void philox16(__m512i c0, uint32_t row, uint32_t step, uint32_t k0, uint32_t k1, __m512i x[4]) {
  const __m512i M0 = _mm512_set1_epi64(0xD2511F53u), M1 = _mm512_set1_epi64(0xCD9E8D57u);
  __m512i hi0, lo0, hi1, lo1;
  // round 1
  mulhilo16(c0, M0, &hi0, &lo0);
  const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * step;
  __m512i c[4];
  c[0] = _mm512_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(p1 >> 32) ^ row ^ k0));
  c[1] = _mm512_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(p1)));
  c[2] = _mm512_xor_si512(hi0, _mm512_set1_epi32(static_cast<int32_t>(k1)));  // ^ counter word 3 (0)
  c[3] = lo0;
  k0 += 0x9E3779B9u;
  k1 += 0xBB67AE85u;
  for (int r = 1; r < 10; ++r) {
    mulhilo16(c[0], M0, &hi0, &lo0);
    mulhilo16(c[2], M1, &hi1, &lo1);
    __m512i n0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c[1]), _mm512_set1_epi32(static_cast<int32_t>(k0)));
    __m512i n2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c[3]), _mm512_set1_epi32(static_cast<int32_t>(k1)));
    c[0] = n0;
    c[1] = lo1;
    c[2] = n2;
    c[3] = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  for (int w = 0; w < 4; ++w) x[w] = c[w];
}

// The bar an entry's u + (upper bound of its Gumbel) must reach to possibly beat `key`.
GRPO_AVX512 inline __m512 bar16(double key) {
  float L = static_cast<float>(key);
  return _mm512_set1_ps(L - key_margin(L));
}

// The pruning scan over full 64-entry blocks [0, nb*64). `best` enters holding the exact key
// of a member (the argmax of u); an entry can beat it only if u + (upper bound of its Gumbel)
// reaches it, so only those get an exact key, and each improvement raises the bar.
GRPO_AVX512 void draw_scan_avx512(const DrawCtx& d, int64_t nb, const Member& mem, Best& best) {
  const GumbelTables& gt = gtab();
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512 vposs = _mm512_set1_ps(d.t_poss), vhimax = _mm512_set1_ps(gt.hi_max);
  __m512 vthr = bar16(best.key);
  const __m512 t1a = _mm512_load_ps(gt.hi32), t1b = _mm512_load_ps(gt.hi32 + 16);
  const __m512 t2a = _mm512_load_ps(gt.hi32top), t2b = _mm512_load_ps(gt.hi32top + 16);
  alignas(64) uint32_t xs[16];
  for (int64_t q = 0; q < nb; ++q) {
    const float* ub = d.u + q * 64;
    __m512 uw[4];
    for (int w = 0; w < 4; ++w) uw[w] = _mm512_loadu_ps(ub + 16 * w);
    __m512 bmax = _mm512_max_ps(_mm512_max_ps(uw[0], uw[1]), _mm512_max_ps(uw[2], uw[3]));
    // whole block below the bar even with the largest possible Gumbel, or no possible
    // member: no Philox needed
    if (!_mm512_cmp_ps_mask(_mm512_add_ps(bmax, vhimax), vthr, _CMP_GE_OQ)) continue;
    if (!_mm512_cmp_ps_mask(bmax, vposs, _CMP_GE_OQ)) continue;
    __m512i c[4];
    philox16(_mm512_add_epi32(iota, _mm512_set1_epi32(static_cast<int32_t>(q * 16))), d.row_id, d.step, d.seed_lo, d.seed_hi, c);
    for (int w = 0; w < 4; ++w) {
      const __m512i j1 = _mm512_srli_epi32(c[w], 27);
      __m512 hi = _mm512_permutex2var_ps(t1a, j1, t1b);
      const __mmask16 top = _mm512_cmpeq_epi32_mask(j1, _mm512_set1_epi32(31));
      hi = _mm512_mask_mov_ps(hi, top, _mm512_permutex2var_ps(t2a, _mm512_srli_epi32(c[w], 22), t2b));
      __mmask16 cm = _mm512_cmp_ps_mask(uw[w], vposs, _CMP_GE_OQ) & _mm512_cmp_ps_mask(_mm512_add_ps(uw[w], hi), vthr, _CMP_GE_OQ);
      if (!cm) continue;
      _mm512_store_si512(xs, c[w]);
      for (unsigned m = cm; m; m &= m - 1) {
        const int lane = __builtin_ctz(m);
        const int64_t v = q * 64 + 16 * w + lane;
        if (mem(v) && best.offer(sample_gumbel_key(d.u[v], xs[lane]), v)) vthr = bar16(best.key);
      }
    }
  }
}

// Random bits of the listed entries, 16 Philox calls at a time (each lane computes its own
// entry's counter and keeps its word).
GRPO_AVX512 void list_bits_avx512(const int32_t* list, int64_t n, uint32_t row_id, uint32_t step, uint32_t k0, uint32_t k1, uint32_t* out) {
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 mk = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    __m512i v = _mm512_maskz_loadu_epi32(mk, list + i);
    __m512i c[4];
    philox16(_mm512_or_si512(_mm512_slli_epi32(_mm512_srli_epi32(v, 6), 4), _mm512_and_si512(v, _mm512_set1_epi32(15))), row_id, step, k0, k1, c);
    __m512i w = _mm512_and_si512(_mm512_srli_epi32(v, 4), _mm512_set1_epi32(3));
    __m512i x = c[0];
    x = _mm512_mask_mov_epi32(x, _mm512_cmpeq_epi32_mask(w, _mm512_set1_epi32(1)), c[1]);
    x = _mm512_mask_mov_epi32(x, _mm512_cmpeq_epi32_mask(w, _mm512_set1_epi32(2)), c[2]);
    x = _mm512_mask_mov_epi32(x, _mm512_cmpeq_epi32_mask(w, _mm512_set1_epi32(3)), c[3]);
    _mm512_storeu_si512(out + i, x);  // out has 16 slack
  }
}

// sample_exp with the FMA instructions inlined (the same IEEE results as the fmaf calls).
GRPO_AVX512 float sample_exp_fma(float x) { return sample_exp(x); }
// The first v with u_v == M (0 if none).
GRPO_AVX512 int32_t first_index_avx512(const float* u, int64_t V, float M) {
  const __m512 vM = _mm512_set1_ps(M);
  for (int64_t v = 0; v < V; v += 16) {
    __mmask16 mk = V - v >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (V - v)) - 1);
    __mmask16 eq = _mm512_mask_cmp_ps_mask(mk, _mm512_maskz_loadu_ps(mk, u + v), vM, _CMP_EQ_OQ);
    if (eq) return static_cast<int32_t>(v + __builtin_ctz(eq));
  }
  return 0;
}

#else
// Never called (the SIMD path is off on these CPUs); they keep sample_row free of #ifs.
template <int DT> float load_row_avx512(const void*, int64_t, float, bool, float*) { return 0; }
template <bool MINP> void sum_exp_avx512(const float*, int64_t, float, float, double*, double*) {}
inline void sum_exp_hist_avx512(const float*, int64_t, float, double*, float*) {}
inline int64_t collect_avx512(const float*, int64_t, float, float, float*, int32_t*, float*) { return 0; }
inline int64_t select_append_avx512(const float*, int64_t, int64_t, float, float*, int32_t*, int64_t n) { return n; }
inline void draw_scan_avx512(const DrawCtx&, int64_t, const Member&, Best&) {}
inline void list_bits_avx512(const int32_t*, int64_t, uint32_t, uint32_t, uint32_t, uint32_t, uint32_t*) {}
inline float sample_exp_fma(float x) { return sample_exp(x); }
inline bool max_if_no_nan_avx512(const float*, int64_t, float*) { return false; }
inline int32_t first_index_avx512(const float*, int64_t, float) { return 0; }
#endif

float sample_exp_scalar(float x) { return sample_exp(x); }

// ---------------------------------------------------------------- AVX2 (scalar code, FMA)
// CPUs with AVX2 + FMA but no AVX-512: the scalar code compiled for them (fmaf inlines to one
// instruction), pass B with independent accumulators, and the same bounded draw as the
// AVX-512 path, one Philox call per 4 entries.
#if GRPO_SAMPLE_X86
#define GRPO_AVX2 __attribute__((target("avx2,fma,f16c")))
#else
#define GRPO_AVX2
#endif

GRPO_AVX2 float sample_exp_avx2(float x) { return sample_exp(x); }

#if GRPO_SAMPLE_X86
// Pass A on 8 lanes; the tail (< 8 entries) in scalar code.
template <int DT>
GRPO_AVX2 float load_row_avx2(const void* z, int64_t V, float tau, bool greedy, float* u) {
  const __m256 vt = _mm256_set1_ps(tau), ninf = _mm256_set1_ps(-kInf);
  __m256 vmax = ninf;
  int64_t v = 0;
  for (; v + 8 <= V; v += 8) {
    __m256 x;
    if (DT == 0) {
      x = _mm256_loadu_ps(static_cast<const float*>(z) + v);
    } else {
      __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(z) + v));
      x = DT == 1 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)) : _mm256_cvtph_ps(h);
    }
    if (!greedy) x = _mm256_div_ps(x, vt);
    x = _mm256_blendv_ps(ninf, x, _mm256_cmp_ps(x, x, _CMP_ORD_Q));
    _mm256_storeu_ps(u + v, x);
    vmax = _mm256_max_ps(vmax, x);
  }
  alignas(32) float mx[8];
  _mm256_store_ps(mx, vmax);
  float M = -kInf;
  for (int j = 0; j < 8; ++j) M = std::max(M, mx[j]);
  for (; v < V; ++v) {
    float x = load_as_float<DT>(z, v);
    if (!greedy) x = x / tau;
    if (x != x) x = -kInf;
    u[v] = x;
    if (x > M) M = x;
  }
  return M;
}

// The 8-lane twin of sample_exp (the same operations in the same order).
GRPO_AVX2 inline __m256 exp8(__m256 x) {
  const __m256 valid = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_GE_OQ);
  x = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  __m256i ni = _mm256_cvtps_epi32(_mm256_max_ps(n, _mm256_set1_ps(-126.0f)));
  __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(ni, _mm256_set1_epi32(127)), 23));
  return _mm256_and_ps(_mm256_mul_ps(p, scale), valid);
}

GRPO_AVX2 inline void acc8(__m256 e, __m256d& lo, __m256d& hi) {
  lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
  hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
}

// Pass B on 8 lanes (two blocks per iteration, independent double accumulators).
GRPO_AVX2 void sum_exp_avx2(const float* u, int64_t V, float M, float m, double* S, double* Sm) {
  const __m256 vM = _mm256_set1_ps(M), vm = _mm256_set1_ps(m);
  __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  int64_t v = 0;
  for (; v + 16 <= V; v += 16) {
    __m256 e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(u + v), vM));
    __m256 e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(u + v + 8), vM));
    acc8(e0, a0, a1);
    acc8(e1, a2, a3);
    acc8(_mm256_and_ps(e0, _mm256_cmp_ps(e0, vm, _CMP_GE_OQ)), b0, b1);
    acc8(_mm256_and_ps(e1, _mm256_cmp_ps(e1, vm, _CMP_GE_OQ)), b2, b3);
  }
  alignas(32) double t[4];
  _mm256_store_pd(t, _mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
  double s0 = (t[0] + t[1]) + (t[2] + t[3]);
  _mm256_store_pd(t, _mm256_add_pd(_mm256_add_pd(b0, b1), _mm256_add_pd(b2, b3)));
  double s1 = (t[0] + t[1]) + (t[2] + t[3]);
  for (; v < V; ++v) {
    float e = sample_exp(u[v] - M);
    s0 += e;
    if (e >= m) s1 += e;
  }
  *S = s0;
  *Sm = s1;
}
#else
template <int DT>
float load_row_avx2(const void* z, int64_t V, float tau, bool greedy, float* u) { return load_row_scalar<DT>(z, V, tau, greedy, u); }
void sum_exp_avx2(const float* u, int64_t V, float M, float m, double* S, double* Sm) { sum_exp_scalar(u, V, M, m, S, Sm); }
#endif

#if GRPO_SAMPLE_X86
// Philox 4x32-10 on 8 lanes with counters {c0 (per lane), row, step, 0} (as philox16).
GRPO_AVX2 inline void philox8(__m256i c0, uint32_t row, uint32_t step, uint32_t k0, uint32_t k1, __m256i x[4]) {
  const __m256i M0 = _mm256_set1_epi64x(0xD2511F53u), M1 = _mm256_set1_epi64x(0xCD9E8D57u);
  auto mulhilo = [](__m256i a, __m256i M, __m256i* hi, __m256i* lo) __attribute__((target("avx2"))) {
    __m256i ev = _mm256_mul_epu32(a, M);
    __m256i od = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), M);
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(ev, 32), od, 0xAA);
    *lo = _mm256_blend_epi32(ev, _mm256_slli_epi64(od, 32), 0xAA);
  };
  __m256i hi0, lo0, hi1, lo1;
  mulhilo(c0, M0, &hi0, &lo0);
  const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * step;
  __m256i c[4];
  c[0] = _mm256_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(p1 >> 32) ^ row ^ k0));
  c[1] = _mm256_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(p1)));
  c[2] = _mm256_xor_si256(hi0, _mm256_set1_epi32(static_cast<int32_t>(k1)));
  c[3] = lo0;
  k0 += 0x9E3779B9u;
  k1 += 0xBB67AE85u;
  for (int r = 1; r < 10; ++r) {
    mulhilo(c[0], M0, &hi0, &lo0);
    mulhilo(c[2], M1, &hi1, &lo1);
    __m256i n0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c[1]), _mm256_set1_epi32(static_cast<int32_t>(k0)));
    __m256i n2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c[3]), _mm256_set1_epi32(static_cast<int32_t>(k1)));
    c[0] = n0;
    c[1] = lo1;
    c[2] = n2;
    c[3] = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  for (int w = 0; w < 4; ++w) x[w] = c[w];
}
#endif

// The bounded draw over full 64-entry blocks: Philox call (q, i) serves the entries
// 64q + 16w + i, w = 0..3; a half block (8 calls, 8 lanes) is skipped when none of its entries
// can be a member that beats the best.
GRPO_AVX2 void draw_scan_avx2(const DrawCtx& d, int64_t nb, const Member& mem, Best& best) {
  const GumbelTables& gt = gtab();
  float L = static_cast<float>(best.key), thr = L - key_margin(L);
#if GRPO_SAMPLE_X86
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  alignas(32) uint32_t xs[4][8];
#endif
  for (int64_t q = 0; q < nb; ++q) {
    for (int h = 0; h < 16; h += 8) {
      const int64_t v0 = q * 64 + h;
      const float* up = d.u + v0;
      float mx = -kInf;
      for (int w = 0; w < 4; ++w)
        for (int i = 0; i < 8; ++i) mx = std::max(mx, up[16 * w + i]);
      if (!(mx >= d.t_poss) || !(mx + gt.hi_max >= thr)) continue;
#if GRPO_SAMPLE_X86
      __m256i x[4];
      philox8(_mm256_add_epi32(iota, _mm256_set1_epi32(static_cast<int32_t>(q * 16 + h))), d.row_id, d.step, d.seed_lo, d.seed_hi, x);
      for (int w = 0; w < 4; ++w) _mm256_store_si256(reinterpret_cast<__m256i*>(xs[w]), x[w]);
#endif
      for (int w = 0; w < 4; ++w)
        for (int i = 0; i < 8; ++i) {
          const float uv = up[16 * w + i];
          if (!(uv >= d.t_poss) || !(uv + gt.hi_max >= thr)) continue;
#if GRPO_SAMPLE_X86
          const uint32_t xv = xs[w][i];
#else
          const uint32_t xv = sample_random_bits(static_cast<uint32_t>(v0 + 16 * w + i), d.row_id, d.step, d.seed_lo, d.seed_hi);
#endif
          if (uv + gt.hi[xv >> 20] >= thr && mem(v0 + 16 * w + i) && best.offer(sample_gumbel_key(uv, xv), v0 + 16 * w + i)) {
            L = static_cast<float>(best.key);
            thr = L - key_margin(L);
          }
        }
    }
  }
}

// ---------------------------------------------------------------- the row algorithm
struct RowCtx {
  bool simd;   // AVX-512 kernels
  bool fast;   // AVX2 kernels (scalar code, bounded draw); neither: the literal algorithm
  Scratch* s;
};

int64_t select_append_scalar(const float* u, int64_t b, int64_t e, float t, float* val, int32_t* idx, int64_t n) {
  for (int64_t v = b; v < e; ++v)
    if (u[v] >= t) {
      val[n] = u[v];
      idx[n] = static_cast<int32_t>(v);
      ++n;
    }
  return n;
}

// All entries with u >= T_k (the k-th largest) into s.list (unsorted, indices); returns T_k.
float select_top(const RowCtx& rc, const float* u, int64_t V, int64_t k) {
  Scratch& s = *rc.s;
  int64_t cap = std::max<int64_t>(4 * k, 4096);
  cap = std::min<int64_t>(cap, V + 16);
  if (static_cast<int64_t>(s.sel_val.size()) < V + 16) {
    s.sel_val.resize(V + 16);
    s.sel_idx.resize(V + 16);
    s.tmp.resize(V + 16);
  }
  float* val = s.sel_val.data();
  int32_t* idx = s.sel_idx.data();
  float t = -kInf;
  int64_t n = 0;
  // A first threshold from a strided sample of 512 values: its j-th largest (j chosen so that
  // ~4 max(k, 128) entries of V are expected above it). Any t with at least k entries >= t is a
  // valid start (T_k >= t); if fewer than k pass, start over from -inf.
  if (k * 16 <= V && V >= 4096) {
    constexpr int64_t kS = 512;
    for (int64_t i = 0; i < kS; ++i) s.tmp[i] = u[i * V / kS];
    const int64_t j = std::min<int64_t>(kS, std::max<int64_t>(4, (4 * std::max<int64_t>(k, 128) * kS + V - 1) / V));
    std::nth_element(s.tmp.data(), s.tmp.data() + (j - 1), s.tmp.data() + kS, std::greater<float>());
    const float t0 = s.tmp[j - 1];
    const int64_t limit = 16 * std::max<int64_t>(k, 128);  // far more than expected: give up
    int64_t m = 0;
    for (int64_t b = 0; b < V && m <= limit; b += 1024)
      m = rc.simd ? select_append_avx512(u, b, std::min(V, b + 1024), t0, val, idx, m) : select_append_scalar(u, b, std::min(V, b + 1024), t0, val, idx, m);
    if (m >= k && m <= limit) {
      n = m;
      t = t0;
    }
  }
  // k-th largest of the buffer becomes the running threshold; compaction keeps >= it.
  auto compact = [&]() {
    std::copy(val, val + n, s.tmp.data());
    std::nth_element(s.tmp.data(), s.tmp.data() + (k - 1), s.tmp.data() + n, std::greater<float>());
    t = s.tmp[k - 1];
    int64_t m = 0;
    for (int64_t i = 0; i < n; ++i)
      if (val[i] >= t) {
        val[m] = val[i];
        idx[m] = idx[i];
        ++m;
      }
    n = m;
  };
  const int64_t step = 1024;
  for (int64_t b = t == -kInf ? 0 : V; b < V; b += step) {
    int64_t e = std::min(V, b + step);
    n = rc.simd ? select_append_avx512(u, b, e, t, val, idx, n) : select_append_scalar(u, b, e, t, val, idx, n);
    if (n >= cap - step && n >= k) {
      compact();
      if (n > cap / 2) cap = std::min<int64_t>(2 * cap, V + 16);  // many ties: grow
    }
  }
  compact();
  s.list.assign(idx, idx + n);
  return t;
}


// The top-p cut of a list sorted by u descending, whose total mass is S1 (or, when S1 < 0,
// the sum of the list itself). Returns how many entries to keep (ties with the last included),
// or -1 when the list's prefix never reaches p*S1 and the list is not the whole kept set.
int64_t top_p_cut(const float* u, const std::vector<int32_t>& list, float M, double p, double S1, bool complete,
                  float (*ex)(float)) {
  const int64_t n = static_cast<int64_t>(list.size());
  if (S1 < 0) {
    S1 = 0;
    for (int64_t i = 0; i < n; ++i) S1 += ex(u[list[i]] - M);
  }
  const double target = p * S1;
  double c = 0;
  int64_t istar = -1;
  for (int64_t i = 0; i < n; ++i) {
    c += ex(u[list[i]] - M);
    if (c >= target) {
      istar = i;
      break;
    }
  }
  if (istar < 0) {
    if (!complete) return -1;
    istar = n - 1;
  }
  const float tp = u[list[istar]];
  int64_t keep = istar + 1;
  while (keep < n && u[list[keep]] >= tp) ++keep;
  return keep;
}

// Stable LSD radix sort of positions 0..n-1 by value descending (equal values keep their
// order): 3 passes of 11/11/10 bits over an order-preserving map of the float bits.
void radix_sort_desc(const float* val, int64_t n, std::vector<uint32_t>& key, std::vector<uint32_t>& key2,
                     std::vector<int32_t>& perm, std::vector<int32_t>& perm2) {
  key.resize(n);
  key2.resize(n);
  perm.resize(n);
  perm2.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    uint32_t b = float_to_bits(val[i]);
    b ^= (b >> 31) ? 0xFFFFFFFFu : 0x80000000u;  // ascending unsigned order of the floats
    key[i] = ~b;                                  // descending
    perm[i] = static_cast<int32_t>(i);
  }
  for (int shift = 0; shift < 32; shift += 11) {
    const uint32_t mask = shift == 22 ? 0x3FFu : 0x7FFu;
    int64_t cnt[2049] = {0};
    for (int64_t i = 0; i < n; ++i) ++cnt[((key[i] >> shift) & mask) + 1];
    for (int j = 0; j < 2048; ++j) cnt[j + 1] += cnt[j];
    for (int64_t i = 0; i < n; ++i) {
      int64_t d = cnt[(key[i] >> shift) & mask]++;
      key2[d] = key[i];
      perm2[d] = perm[i];
    }
    key.swap(key2);
    perm.swap(perm2);
  }
}

// Sorts a list of indices (ascending on entry) by u descending, ties by index ascending.
// Large lists (a big top-k) go through the radix sort: stable, so ties keep index order.
void sort_list_desc(const float* u, std::vector<int32_t>& list, Scratch& s) {
  const int64_t n = static_cast<int64_t>(list.size());
  if (n <= 2048) {
    std::sort(list.begin(), list.end(), [u](int32_t a, int32_t b) { return u[a] > u[b] || (u[a] == u[b] && a < b); });
    return;
  }
  if (!std::is_sorted(list.begin(), list.end())) std::sort(list.begin(), list.end());
  if (static_cast<int64_t>(s.tmp.size()) < n) s.tmp.resize(n);
  for (int64_t i = 0; i < n; ++i) s.tmp[i] = u[list[i]];
  radix_sort_desc(s.tmp.data(), n, s.rkey, s.rkey2, s.perm, s.perm2);
  int32_t* sorted = s.perm2.data();  // free after the sort, n long
  for (int64_t i = 0; i < n; ++i) sorted[i] = list[s.perm[i]];
  std::copy(sorted, sorted + n, list.begin());
}

// Top-p without top-k (SIMD): the pass-B histogram picks the smallest cut {u - M >= -d} whose
// mass surely reaches p*S; those entries are collected with their E, radix-sorted, and the
// prefix is cut exactly as in top_p_cut (same E values, same order, same double sums).
// Returns false (caller falls back to the chunked selection) if rounding made the cut too small.
bool top_p_simd(const RowCtx& rc, const float* u, int64_t V, float M, float p) {
  Scratch& s = *rc.s;
  const double target = static_cast<double>(p) * s.S;
  float negd = -kInf;
  for (int j = 0; j < kHist; ++j)
    if (static_cast<double>(s.hist[j]) >= target * (1 + 4e-3) + 1e-30) {
      negd = -kHistD[j];
      break;
    }
  if (static_cast<int64_t>(s.sel_val.size()) < V + 16) {
    s.sel_val.resize(V + 16);
    s.sel_idx.resize(V + 16);
    s.tmp.resize(V + 16);
  }
  const int64_t n = collect_avx512(u, V, M, negd, s.sel_val.data(), s.sel_idx.data(), s.tmp.data());
  radix_sort_desc(s.sel_val.data(), n, s.rkey, s.rkey2, s.perm, s.perm2);
  double c = 0;
  int64_t istar = -1;
  for (int64_t i = 0; i < n; ++i) {
    c += s.tmp[s.perm[i]];
    if (c >= target) {
      istar = i;
      break;
    }
  }
  if (istar < 0) {
    if (n < V) return false;
    istar = n - 1;
  }
  const float tp = s.sel_val[s.perm[istar]];
  int64_t keep = istar + 1;
  while (keep < n && s.sel_val[s.perm[keep]] >= tp) ++keep;
  s.list.resize(keep);
  for (int64_t i = 0; i < keep; ++i) s.list[i] = s.sel_idx[s.perm[i]];
  return true;
}

// Pass A on the best kernel this CPU has.
template <int DT>
float load_row(const RowCtx& rc, const void* z, int64_t V, float tau, bool greedy, float* u) {
  return rc.simd ? load_row_avx512<DT>(z, V, tau, greedy, u)
                 : rc.fast ? load_row_avx2<DT>(z, V, tau, greedy, u) : load_row_scalar<DT>(z, V, tau, greedy, u);
}

void sample_row(const RowCtx& rc, const SampleArgs& a, int64_t b) {
  Scratch& s = *rc.s;
  const int64_t V = a.V;
  if (static_cast<int64_t>(s.u.size()) < V) s.u.resize(V);
  const float* u = s.u.data();
  const float tau = a.temperature[b];
  const bool greedy = !(tau > 0);
  const uint32_t row_id = a.row_ids ? a.row_ids[b] : static_cast<uint32_t>(b);

  // pass A
  float M;
  const void* z;
  float* ubuf = s.u.data();
  switch (a.logits.dtype) {
    case DType::BF16:
      z = a.logits.as<uint16_t>() + b * V;
      M = load_row<1>(rc, z, V, tau, greedy, ubuf);
      break;
    case DType::F16:
      z = a.logits.as<uint16_t>() + b * V;
      M = load_row<2>(rc, z, V, tau, greedy, ubuf);
      break;
    default:
      z = a.logits.as<float>() + b * V;
      if (rc.simd && (greedy || tau == 1.0f) && max_if_no_nan_avx512(static_cast<const float*>(z), V, &M)) {
        u = static_cast<const float*>(z);  // u == z bit for bit: read the logits in place
        break;
      }
      M = load_row<0>(rc, z, V, tau, greedy, ubuf);
      break;
  }
  auto first_of_max = [&]() -> int32_t {
    if (rc.simd) return first_index_avx512(u, V, M);
    for (int64_t v = 0; v < V; ++v)
      if (u[v] == M) return static_cast<int32_t>(v);
    return 0;
  };
  float (*ex)(float) = rc.simd ? sample_exp_fma : rc.fast ? sample_exp_avx2 : sample_exp_scalar;
  if (!std::isfinite(M)) {
    a.tokens[b] = first_of_max();
    a.logp[b] = kNaN;
    if (a.trunc_logp) a.trunc_logp[b] = kNaN;
    return;
  }

  const int32_t topk = a.top_k[b];
  const float topp = a.top_p[b];
  float minp = a.min_p[b];
  if (!(minp > 0)) minp = 0;  // NaN, negative: off
  if (minp > 1) minp = 1;
  const bool use_k = !greedy && topk > 0 && topk < V;
  const bool use_p = !greedy && topp < 1;  // NaN: off
  const bool use_m = !greedy && minp > 0;

  // pass B
  double S, Sm;
  const float m_for_sum = use_m ? minp : 0.0f;
  const bool hist = rc.simd && use_p && !use_k;
  if (hist) {
    sum_exp_hist_avx512(u, V, M, &S, s.hist);
    Sm = S;  // unused: a top-p row always has a list
  } else if (rc.simd) {
    if (use_m) sum_exp_avx512<true>(u, V, M, m_for_sum, &S, &Sm);
    else sum_exp_avx512<false>(u, V, M, m_for_sum, &S, &Sm);
  } else if (rc.fast) {
    sum_exp_avx2(u, V, M, m_for_sum, &S, &Sm);
  } else {
    sum_exp_scalar(u, V, M, m_for_sum, &S, &Sm);
  }
  s.S = S;

  auto finish = [&](int32_t tok, double S3) {
    a.tokens[b] = tok;
    const double d = static_cast<double>(u[tok]) - static_cast<double>(M);
    a.logp[b] = static_cast<float>(d - std::log(S));
    if (a.trunc_logp) a.trunc_logp[b] = greedy ? 0.0f : static_cast<float>(d - std::log(S3));
  };

  if (greedy) {
    finish(first_of_max(), 0);
    return;
  }

  // 2. kept set as an explicit list (top-k and/or top-p) or implicitly (all / min-p only)
  bool have_list = false;
  if (use_k) {
    select_top(rc, u, V, topk);
    sort_list_desc(u, s.list, s);
    have_list = true;
    if (use_p) {
      int64_t keep = top_p_cut(u, s.list, M, topp, -1.0, true, ex);
      s.list.resize(keep);
    }
  } else if (use_p && rc.simd && top_p_simd(rc, u, V, M, topp)) {
    have_list = true;
  } else if (use_p) {
    for (int64_t C = 256;; C *= 8) {
      if (C >= V) {
        s.list.resize(V);
        for (int64_t v = 0; v < V; ++v) s.list[v] = static_cast<int32_t>(v);
      } else {
        select_top(rc, u, V, C);
      }
      sort_list_desc(u, s.list, s);
      const bool complete = static_cast<int64_t>(s.list.size()) >= V;
      int64_t keep = top_p_cut(u, s.list, M, topp, S, complete, ex);
      if (keep >= 0) {
        s.list.resize(keep);
        break;
      }
    }
    have_list = true;
  }

  const uint32_t sl = a.seed_lo, sh = a.seed_hi, st = a.step;
  const GumbelTables& gt = gtab();
  Best best;
  double S3;
  float t_list = -kInf;  // with a list: K2 = {u >= t_list}
  if (have_list) {
    // min-p on the list and the truncated mass
    t_list = u[s.list.back()];
    int64_t m = 0;
    S3 = 0;
    for (int32_t v : s.list) {
      float e = ex(u[v] - M);
      if (use_m && !(e >= minp)) continue;
      S3 += e;
      s.list[m++] = v;
    }
    s.list.resize(m);
  } else {
    S3 = use_m ? Sm : S;
  }
  const Member mem{u, M, t_list, minp, use_m};
  if (!rc.simd && !rc.fast) {
    // the algorithm as written: an exact key for every member
    if (have_list) {
      for (int32_t v : s.list) best.offer(sample_gumbel_key(u[v], sample_random_bits(v, row_id, st, sl, sh)), v);
    } else {
      for (int64_t v = 0; v < V; ++v)
        if (mem(v)) best.offer(sample_gumbel_key(u[v], sample_random_bits(static_cast<uint32_t>(v), row_id, st, sl, sh)), v);
    }
  } else {
    // Start from the exact key of the argmax of u (always a member), then give an exact key
    // only to entries whose u + (table upper bound of their Gumbel) reaches the best so far.
    const int32_t vm = first_of_max();
    best.offer(sample_gumbel_key(u[vm], sample_random_bits(static_cast<uint32_t>(vm), row_id, st, sl, sh)), vm);
    if (have_list && s.list.size() <= 16384) {
      const int64_t n = static_cast<int64_t>(s.list.size());
      if (static_cast<int64_t>(s.cand_x.size()) < n + 16) s.cand_x.resize(n + 16);
      if (rc.simd) {
        list_bits_avx512(s.list.data(), n, row_id, st, sl, sh, s.cand_x.data());
      } else {
        for (int64_t i = 0; i < n; ++i) s.cand_x[i] = sample_random_bits(static_cast<uint32_t>(s.list[i]), row_id, st, sl, sh);
      }
      float L = static_cast<float>(best.key), thr = L - key_margin(L);
      for (int64_t i = 0; i < n; ++i) {
        const int32_t v = s.list[i];
        const uint32_t x = s.cand_x[i];
        if (u[v] + gt.hi[x >> 20] >= thr && best.offer(sample_gumbel_key(u[v], x), v)) {
          L = static_cast<float>(best.key);
          thr = L - key_margin(L);
        }
      }
    } else {
      // Membership: u >= t_list and e_v >= minp; no member has u - M < log(minp) - slack.
      float t_poss = t_list;
      if (use_m) {
        const double slack = 0.05 + 1e-6 * std::fabs(M);
        t_poss = std::max(t_poss, static_cast<float>(M + std::log(static_cast<double>(minp)) - slack));
      }
      const int64_t nfull = V / 64;
      DrawCtx d{u, row_id, st, sl, sh, t_poss};
      if (rc.simd) draw_scan_avx512(d, nfull, mem, best);
      else draw_scan_avx2(d, nfull, mem, best);
      for (int64_t v = nfull * 64; v < V; ++v)  // the tail
        if (u[v] >= t_poss && mem(v)) best.offer(sample_gumbel_key(u[v], sample_random_bits(static_cast<uint32_t>(v), row_id, st, sl, sh)), v);
    }
  }
  // best.v < 0 cannot happen (the argmax of u is always kept); stay in bounds regardless
  finish(best.v >= 0 ? static_cast<int32_t>(best.v) : first_of_max(), S3);
}

}  // namespace

void sample_cpu(const SampleArgs& a) {
  if (a.R <= 0 || a.V <= 0) return;
  if (a.V > INT32_MAX) throw std::invalid_argument("sample: V must fit in int32 (token ids)");
  const bool simd = GRPO_SAMPLE_X86 && cpu_isa_level() == CpuIsa::Avx512;
  const bool fast = GRPO_SAMPLE_X86 && cpu_isa_level() == CpuIsa::Avx2;
  parallel_for(a.R, [&](int64_t b0, int64_t b1, int) {
    RowCtx rc{simd, fast, &scratch()};
    for (int64_t b = b0; b < b1; ++b) sample_row(rc, a, b);
  });
}

}  // namespace grpo
