// The row kernels of row_kernels.h, written once with GCC vector extensions (16 float lanes) and
// compiled once per ISA: row_kernels_avx512.cc (one zmm per vector), _avx2.cc (two ymm),
// _generic.cc (four xmm, or scalar code off x86). Only loads/stores of the 16-bit types and the
// streaming stores use ISA intrinsics. Include with GRPO_ROWK_NS set to the variant's namespace.
//
// exp: Cody-Waite reduction x = n·ln2 + r (|r| <= ln2/2, ln2 split in two so n·ln2_hi is exact),
// a degree-5 minimax polynomial, then ·2^n: about 2 ulp. Inputs are clamped below at kExpLo,
// where the result is exactly 0, so exp(−inf) = 0 (masked vocabulary) and the entropy term e·d
// stays 0·kExpLo = 0.
// The kernels only ever exponentiate d = (z − zmax)/τ <= 0. NaN inputs propagate.
#include <cstdint>
#include <cstring>

// 16-lane vectors are passed between inline helpers only (never across an ABI boundary), and
// GCC 12 flags its own _mm512_cvtph_ps / _mm512_cvtps_ph bodies as maybe-uninitialized.
#pragma GCC diagnostic ignored "-Wpsabi"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GRPO_X86 1
#endif

#include "../common/half.h"
#include "row_kernels.h"

namespace grpo {
namespace GRPO_ROWK_NS {

constexpr int W = 16;  // float lanes per vector
typedef float vf __attribute__((vector_size(64)));
typedef int32_t vi __attribute__((vector_size(64)));
typedef uint32_t vu __attribute__((vector_size(64)));
typedef uint16_t vh __attribute__((vector_size(32)));
typedef float vf_u __attribute__((vector_size(64), aligned(4), may_alias));
typedef uint16_t vh_u __attribute__((vector_size(32), aligned(2), may_alias));

#define GRPO_AI inline __attribute__((always_inline))

GRPO_AI vf splat(float x) { return vf{} + x; }
GRPO_AI vf vmax(vf a, vf b) { return a > b ? a : b; }
GRPO_AI float hmax(vf v) {
  float m = v[0];
  for (int k = 1; k < W; ++k) m = v[k] > m ? v[k] : m;
  return m;
}
GRPO_AI double hsum(vf v) {
  double s = 0;
  for (int k = 0; k < W; ++k) s += v[k];
  return s;
}
GRPO_AI vi lane_ids() { return vi{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}; }

// exp(x) for x >= kExpLo (or NaN); clamp_lo() first. AVX-512 rounds with vrndscaleps and scales
// with vscalefps (2^n for any n, 0 below the denormals: kExpLo = −110 gives exactly 0); the other
// builds add a magic number to round and build 2^n in the exponent bits (n = −127 gives +0, so
// kExpLo = −88 there). Degree-5 minimax polynomial on |r| <= ln2/2: relative error 9e-8.
#if defined(__AVX512F__)
constexpr float kExpLo = -110.0f;
#else
constexpr float kExpLo = -88.0f;
#endif
GRPO_AI vf clamp_lo(vf x) {
#if defined(__AVX512F__)
  return (vf)_mm512_max_ps((__m512)splat(kExpLo), (__m512)x);  // NaN x is returned as is
#else
  return x < kExpLo ? splat(kExpLo) : x;  // keeps NaN
#endif
}
GRPO_AI vf exp_poly(vf r) {
  vf p = splat(8.2903066650033e-3f);
  p = p * r + 4.1897933930158615e-2f;
  p = p * r + 1.666763573884964e-1f;
  p = p * r + 4.999915063381195e-1f;
  p = p * r + 9.999997019767761e-1f;
  return p * r + 1.0f;
}
GRPO_AI vf vexp_clamped(vf x) {
#if defined(__AVX512F__)
  __m512 n = _mm512_roundscale_ps((__m512)(x * 1.44269504088896341f), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  vf nf = (vf)n;
  vf r = x - nf * 0.693359375f;  // ln2_hi: n·ln2_hi is exact for |n| <= 2^9
  r = r - nf * -2.12194440e-4f;  // ln2_lo
  return (vf)_mm512_scalef_ps((__m512)exp_poly(r), n);
#else
  const float magic = 12582912.0f + 127.0f;  // 1.5·2^23 + bias: t's low bits hold n + 127
  vf t = x * 1.44269504088896341f + magic;
  vf n = t - magic;
  vf r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  vu bits = (vu)t << 23;  // (n + 127) << 23 = 2^n; n = −127 gives +0
  return exp_poly(r) * (vf)bits;
#endif
}
GRPO_AI vf vexp(vf x) { return vexp_clamped(clamp_lo(x)); }

// ---- loads and stores of 16 elements of type DT (0 f32, 1 bf16, 2 f16) -----------------------

template <int DT> struct Elem { using T = uint16_t; };
template <> struct Elem<0> { using T = float; };
template <int DT> GRPO_AI typename Elem<DT>::T neg_inf_bits();
template <> GRPO_AI float neg_inf_bits<0>() { return -__builtin_inff(); }
template <> GRPO_AI uint16_t neg_inf_bits<1>() { return 0xff80; }
template <> GRPO_AI uint16_t neg_inf_bits<2>() { return 0xfc00; }

template <int DT> GRPO_AI vf load(const void* p, int64_t i);
template <> GRPO_AI vf load<0>(const void* p, int64_t i) { return *reinterpret_cast<const vf_u*>(static_cast<const float*>(p) + i); }
template <> GRPO_AI vf load<1>(const void* p, int64_t i) {
#if defined(__AVX512F__)
  // One vpmovzxwd ymm->zmm (from memory) and a shift: GCC turns the generic form below into two
  // 256-bit widenings, an extract and an insert, which made bfloat16 rows cost ~0.15 ns/element
  // more than float32 ones in the exp passes (bench/results/fused-floor.md).
  __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(p) + i)));
  return (vf)_mm512_slli_epi32(w, 16);
#else
  vh h = *reinterpret_cast<const vh_u*>(static_cast<const uint16_t*>(p) + i);
  vu w = __builtin_convertvector(h, vu) << 16;
  return (vf)w;
#endif
}
template <> GRPO_AI vf load<2>(const void* p, int64_t i) {
  const uint16_t* q = static_cast<const uint16_t*>(p) + i;
#if defined(__AVX512F__)
  __m512 r = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q)));
  return (vf)r;
#elif defined(__F16C__)
  __m256 a[2] = {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q))),
                 _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 8)))};
  vf r;
  std::memcpy(&r, a, 64);
  return r;
#else
  // Exact f16 -> f32 with integer ops: shift exponent+mantissa into place and rescale by 2^112
  // (handles subnormals too); Inf/NaN get the float exponent all ones.
  vh h = *reinterpret_cast<const vh_u*>(q);
  vu w = __builtin_convertvector(h, vu);
  vu em = w & 0x7fffu;
  vu sign = (w & 0x8000u) << 16;
  vu sh = em << 13;
  vf f = (vf)sh * 0x1p112f;
  vu fb = (vu)f;
  vu special = sh | 0x7f800000u;
  fb = em >= 0x7c00u ? special : fb;
  fb |= sign;
  return (vf)fb;
#endif
}

GRPO_AI vh to_bf16(vf v) {
  vu u = (vu)v;
  vu r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;  // round to nearest even
  vu q = (u >> 16) | 0x40u;                          // quiet NaN
  r = v != v ? q : r;
  return __builtin_convertvector(r, vh);
}

GRPO_AI vh to_f16(vf v) {
#if defined(__AVX512F__)
  __m256i h = _mm512_cvtps_ph((__m512)v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return (vh)h;
#elif defined(__F16C__)
  __m256 a[2];
  std::memcpy(a, &v, 64);
  __m128i h[2] = {_mm256_cvtps_ph(a[0], _MM_FROUND_TO_NEAREST_INT), _mm256_cvtps_ph(a[1], _MM_FROUND_TO_NEAREST_INT)};
  vh r;
  std::memcpy(&r, h, 32);
  return r;
#else
  vh r;
  for (int k = 0; k < W; ++k) r[k] = float_to_f16(v[k]);
  return r;
#endif
}

// Streaming stores need 64-byte (f32) / 32-byte (16-bit) aligned addresses: the callers peel a
// head so that every full vector they stream is aligned.
GRPO_AI void stream_f32(float* q, vf v) {
#if defined(__AVX512F__)
  _mm512_stream_ps(q, (__m512)v);
#elif defined(__AVX__)
  __m256 a[2];
  std::memcpy(a, &v, 64);
  _mm256_stream_ps(q, a[0]);
  _mm256_stream_ps(q + 8, a[1]);
#elif defined(__SSE2__)
  __m128 a[4];
  std::memcpy(a, &v, 64);
  for (int k = 0; k < 4; ++k) _mm_stream_ps(q + 4 * k, a[k]);
#else
  *reinterpret_cast<vf_u*>(q) = v;
#endif
}
GRPO_AI void stream_16(uint16_t* q, vh h) {
#if defined(__AVX__)
  _mm256_stream_si256(reinterpret_cast<__m256i*>(q), (__m256i)h);
#elif defined(__SSE2__)
  __m128i a[2];
  std::memcpy(a, &h, 32);
  _mm_stream_si128(reinterpret_cast<__m128i*>(q), a[0]);
  _mm_stream_si128(reinterpret_cast<__m128i*>(q + 8), a[1]);
#else
  *reinterpret_cast<vh_u*>(q) = h;
#endif
}

template <int DT, bool NT> GRPO_AI void store(void* p, int64_t i, vf v) {
  if (DT == 0) {
    float* q = static_cast<float*>(p) + i;
    if (NT) stream_f32(q, v);
    else *reinterpret_cast<vf_u*>(q) = v;
  } else {
    uint16_t* q = static_cast<uint16_t*>(p) + i;
    vh h = DT == 1 ? to_bf16(v) : to_f16(v);
    if (NT) stream_16(q, h);
    else *reinterpret_cast<vh_u*>(q) = h;
  }
}

// Two vectors, 2·W elements at i (a streamed bfloat16 pair needs q 64-byte aligned). bfloat16
// under AVX-512: both vectors rounded as to_bf16 rounds (round to nearest even, NaN quieted) in
// their 32-bit lanes, then one vpermt2w gathers the 32 high halves: about half the ops of two
// to_bf16 + narrowing stores, the same bits.
template <int DT, bool NT> GRPO_AI void store2(void* p, int64_t i, vf a, vf b) {
#if defined(__AVX512BW__)
  if (DT == 1) {
    auto hi_rounded = [](vf v) __attribute__((always_inline)) {
      __m512i u = (__m512i)v;
      __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
      __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb);
      __mmask16 nan = _mm512_cmp_ps_mask((__m512)v, (__m512)v, _CMP_UNORD_Q);
      return _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x00400000));
    };
    const __m512i odd = _mm512_set_epi16(63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35, 33, 31, 29, 27, 25,
                                         23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    __m512i h = _mm512_permutex2var_epi16(hi_rounded(a), odd, hi_rounded(b));
    uint16_t* q = static_cast<uint16_t*>(p) + i;
    if (NT) _mm512_stream_si512(reinterpret_cast<__m512i*>(q), h);
    else _mm512_storeu_si512(q, h);
    return;
  }
#endif
  store<DT, NT>(p, i, a);
  store<DT, NT>(p, i + W, b);
}

// Partial vectors (row heads and tails): n < W elements through a small buffer; missing lanes
// read as −inf (exp gives 0, max ignores them).
template <int DT> GRPO_AI vf load_part(const void* p, int64_t i, int64_t n) {
  using T = typename Elem<DT>::T;
  alignas(64) T buf[W];
  const T* q = static_cast<const T*>(p) + i;
  for (int k = 0; k < W; ++k) buf[k] = k < n ? q[k] : neg_inf_bits<DT>();
  return load<DT>(buf, 0);
}
template <int DT> GRPO_AI void store_part(void* p, int64_t i, int64_t n, vf v) {
  using T = typename Elem<DT>::T;
  alignas(64) T buf[W];
  store<DT, false>(buf, 0, v);
  std::memcpy(static_cast<T*>(p) + i, buf, static_cast<size_t>(n) * sizeof(T));
}

// Elements before the first address of `out` aligned for streaming stores (0 when not
// streaming); `out` is element-aligned (the dispatchers below turn streaming off otherwise).
template <int DT> GRPO_AI int64_t stream_head(const void* out, int64_t V, bool nt) {
  if (!nt) return 0;
  constexpr uintptr_t A = DT == 0 ? 64 : 32;
  constexpr uintptr_t E = DT == 0 ? 4 : 2;
  uintptr_t a = reinterpret_cast<uintptr_t>(out);
  int64_t h = static_cast<int64_t>(((A - a % A) % A) / E);
  return h < V ? h : V;
}
GRPO_AI bool can_stream(int dt, const void* out) {
  return reinterpret_cast<uintptr_t>(out) % (dt == 0 ? 4 : 2) == 0;
}

// ---- the kernels ------------------------------------------------------------------------------

constexpr int64_t kBlock = kRowBlock;
#ifndef GRPO_PF_DIST
#define GRPO_PF_DIST kBlock  // prefetch distance in elements (2048/4096/8192 measured: 2048 best)
#endif

// v with lane y − at set to ty when the target y falls in the vector starting at `at`.
GRPO_AI vf fix_target(vf v, int64_t at, int64_t y, float ty) {
  if (static_cast<uint64_t>(y - at) < static_cast<uint64_t>(W)) {
    vi hit = lane_ids() == static_cast<int32_t>(y - at);
    v = hit ? splat(ty) : v;
  }
  return v;
}

// Sums over [b, e) of the row relative to zmax, d = (z − zmax)·inv (the max gives d = 0 exactly):
// s += exp(d) where d < 0, w += exp(d)·d, k += 1 where d = 0 (row_finish.h: the max's exact 1
// stays out of the float lanes so s − 1 keeps its digits). Float lanes: a block is short enough
// that float partial sums keep ~1e-7 relative. Optionally stores e_v into dst. PF: prefetch the
// next block while exponentiating this one, so the next block max reads cache, not memory (the
// exp work hides the memory latency). COUNT: the block holds the running max (only then can d be
// 0; other blocks skip the compare: a row has ~ln(V/kBlock) such blocks).
template <int DT, bool STORE, bool PF, bool COUNT>
GRPO_AI void exp_block(const void* row, int64_t b, int64_t e, int64_t V, float zmax, float inv, float* dst, vf& s, vf& w,
                       vf& k) {
  using T = typename Elem<DT>::T;
  const vf vinv = splat(inv), vzm = splat(zmax), vzi = splat(-zmax * inv);
  vf s1 = vf{}, w1 = vf{}, k1 = vf{};
  int64_t i = b;
  auto one = [&](vf z, int64_t at, vf& sa, vf& wa, vf& ka) __attribute__((always_inline)) {
    // The block with the max: d = (z − zmax)·inv, exactly 0 at the max. Other blocks: one FMA,
    // z·inv − round(zmax·inv); there z < zmax, and d is negative up to rounding of a near-tie
    // (then e ≈ 1 and H is far from 0: no digits lost).
    vf d = COUNT ? clamp_lo((z - vzm) * vinv) : clamp_lo(z * vinv + vzi);
    vf ev = vexp_clamped(d);
    if (STORE) {
      if (at + W <= V) *reinterpret_cast<vf_u*>(dst + at) = ev;
      else store_part<0>(dst, at, V - at, ev);
    }
    if (COUNT) {
#if defined(__AVX512F__)
      // Masked adds (3 ops; the blends below compile to 6): the same sums, as x + 0 = x.
      __mmask16 top = _mm512_cmp_ps_mask((__m512)d, _mm512_setzero_ps(), _CMP_EQ_OQ);
      sa = (vf)_mm512_mask_add_ps((__m512)sa, static_cast<__mmask16>(~top), (__m512)sa, (__m512)ev);
      ka = (vf)_mm512_mask_add_ps((__m512)ka, top, (__m512)ka, _mm512_set1_ps(1.0f));
#else
      auto top = d == 0.0f;
      sa += top ? vf{} : ev;
      ka += top ? splat(1.0f) : vf{};
#endif
    } else {
      sa += ev;  // d < 0 here (or an underflowed d = 0 of z within a subnormal of M: exact anyway)
    }
    wa += ev * d;
  };
  for (; i + 2 * W <= e; i += 2 * W) {
    if (PF) {  // 2·W elements: 128 bytes of float32, 64 of 16-bit; past the row end is harmless
      const char* p = reinterpret_cast<const char*>(static_cast<const T*>(row) + i + GRPO_PF_DIST);
      __builtin_prefetch(p);
      if (sizeof(T) == 4) __builtin_prefetch(p + 64);
    }
    one(load<DT>(row, i), i, s, w, k);
    one(load<DT>(row, i + W), i + W, s1, w1, k1);
  }
  for (; i + W <= e; i += W) one(load<DT>(row, i), i, s, w, k);
  if (i < e) one(load_part<DT>(row, i, e - i), i, s, w, k);
  s += s1;
  w += w1;
  k += k1;
}

// The online pass over row `cur` (null: none), block by block: block max (from memory), running
// max M and the sums rescaled to it, exp of the block from L1 (stored into e_cur relative to the
// block's running max, bmax[blk] = that max, when STORE), while the next block is prefetched.
// In the same block loop the previous row is finished: out_prev = e_prev·fac[blk] with the target
// entry y_prev set to ty_prev (zero_prev: all zero), streamed when NT. So a worker's DRAM reads
// (row n+1) and writes (row n) and its exp work all overlap.
template <int DT, bool STORE, bool NT>
RowStats pipe_t(const void* cur, int64_t V, float inv, int64_t y, float* e_cur, float* bmax, const float* e_prev,
                const float* fac, int64_t y_prev, float ty_prev, void* out_prev, bool zero_prev) {
  RowStats st;
  const bool pair_ok = !NT || DT != 1 || reinterpret_cast<uintptr_t>(out_prev) % 64 == 0;
  float M = -__builtin_inff();
  double S = 0, Wd = 0, K = 0;  // row_finish.h's s_r, w, k relative to the running max M
  for (int64_t b = 0, blk = 0; b < V; b += kBlock, ++blk) {
    int64_t e = b + kBlock < V ? b + kBlock : V;
    if (cur) {
      // Block max: the block comes from memory once; the exp pass below reads it from L1.
      vf m0 = splat(-__builtin_inff()), m1 = m0;
      int64_t i = b;
#if defined(__AVX512F__)
      if (DT == 1) {
        // bfloat16: 32 values per 64-byte load, widened in place (no shuffles): the even ones
        // shifted into the high half of their 32-bit lane, the odd ones already there (low half
        // masked off). The max does not care which lane holds which value.
        const __m512i hi_mask = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
        for (; i + 2 * W <= e; i += 2 * W) {
          __m512i x = _mm512_loadu_si512(static_cast<const uint16_t*>(cur) + i);
          m0 = vmax(m0, (vf)_mm512_slli_epi32(x, 16));
          m1 = vmax(m1, (vf)_mm512_and_si512(x, hi_mask));
        }
      }
#endif
      for (; i + 2 * W <= e; i += 2 * W) {
        m0 = vmax(m0, load<DT>(cur, i));
        m1 = vmax(m1, load<DT>(cur, i + W));
      }
      for (; i + W <= e; i += W) m0 = vmax(m0, load<DT>(cur, i));
      if (i < e) m1 = vmax(m1, load_part<DT>(cur, i, e - i));
      float bm = hmax(vmax(m0, m1));
      if (bm > M) {
        if (S != 0 || Wd != 0 || K != 0) {  // rescale the sums so far to the new max: d' = d + δ < 0
          double delta = (static_cast<double>(M) - bm) * inv;
          double sc = std::exp(delta);
          Wd = sc * (Wd + delta * (S + K));
          S = sc * (S + K);
          K = 0;
        }
        M = bm;
      }
      if (STORE) bmax[blk] = M;
      if (M == -__builtin_inff()) {  // only −inf so far: adds nothing (and z − M would be NaN)
        if (STORE) for (int64_t i = b; i < e; ++i) e_cur[i] = 0.0f;
      } else {
        vf s = vf{}, w = vf{}, kk = vf{};
        if (bm == M) exp_block<DT, STORE, true, true>(cur, b, e, V, M, inv, e_cur, s, w, kk);
        else exp_block<DT, STORE, true, false>(cur, b, e, V, M, inv, e_cur, s, w, kk);
        S += hsum(s);
        Wd += hsum(w);
        K += hsum(kk);
      }
    }
    if (e_prev) {
      const vf vc = splat(zero_prev ? 0.0f : fac[blk]);
      const float ty = zero_prev ? 0.0f : ty_prev;
      auto val = [&](vf ev, int64_t at) __attribute__((always_inline)) {
        return zero_prev ? vf{} : fix_target(ev * vc, at, y_prev, ty);
      };
      int64_t i = b;
      // Pairs keep a streamed bfloat16 row's 64-byte alignment when the row has it (pipe_step).
      if (pair_ok)
        for (; i + 2 * W <= e; i += 2 * W) store2<DT, NT>(out_prev, i, val(load<0>(e_prev, i), i), val(load<0>(e_prev, i + W), i + W));
      for (; i + W <= e; i += W) store<DT, NT>(out_prev, i, val(load<0>(e_prev, i), i));
      if (i < e) store_part<DT>(out_prev, i, e - i, val(load_part<0>(e_prev, i, e - i), i));
    }
  }
  (void)y;  // the sums cover the whole row
  st.zmax = M;
  st.sums.s_r = S;
  st.sums.w = Wd;
  st.sums.k = K;
  return st;
}

template <int DT> RowStats stats_t(const void* row, int64_t V, float inv, int64_t y) {
  return pipe_t<DT, false, false>(row, V, inv, y, nullptr, nullptr, nullptr, nullptr, 0, 0.0f, nullptr, false);
}

// Runs f(i) over full vectors [h, ...) and fpart(i, n) over the head [0, h) and the tail.
template <class F, class FP> GRPO_AI void over_row(int64_t V, int64_t h, F&& f, FP&& fpart) {
  if (h > 0) fpart(int64_t(0), h);
  int64_t i = h;
  for (; i + 2 * W <= V; i += 2 * W) {
    f(i);
    f(i + W);
  }
  for (; i + W <= V; i += W) f(i);
  if (i < V) fpart(i, V - i);
}

template <int DT, bool NT>
void exp_scale_store_t(const void* row, int64_t V, float zmax, float inv, float c, int64_t y, float ty, void* out) {
  const vf vinv = splat(inv), vzi = splat(-zmax * inv), vc = splat(c);
  auto g = [&](vf z) __attribute__((always_inline)) { return vexp(z * vinv + vzi) * vc; };
  int64_t h = stream_head<DT>(out, V, NT);
  over_row(
      V, h, [&](int64_t i) __attribute__((always_inline)) { store<DT, NT>(out, i, fix_target(g(load<DT>(row, i)), i, y, ty)); },
      [&](int64_t i, int64_t n) { store_part<DT>(out, i, n, fix_target(g(load_part<DT>(row, i, n)), i, y, ty)); });
}

// The entropy bonus's variant: out_v = exp(d_v)·(c + cd·d_v), d_v = (z_v − zmax)/τ clamped below
// at kExpLo as vexp clamps it (so a −inf logit gives 0, not 0·inf); ∂H/∂z_v is linear in p_v·log p_v.
template <int DT, bool NT>
void exp_scale_store_h_t(const void* row, int64_t V, float zmax, float inv, float c, float cd, int64_t y, float ty, void* out) {
  const vf vinv = splat(inv), vzi = splat(-zmax * inv), vc = splat(c), vcd = splat(cd);
  auto g = [&](vf z) __attribute__((always_inline)) {
    const vf d = clamp_lo(z * vinv + vzi);
    return vexp_clamped(d) * (vc + vcd * d);
  };
  int64_t h = stream_head<DT>(out, V, NT);
  over_row(
      V, h, [&](int64_t i) __attribute__((always_inline)) { store<DT, NT>(out, i, fix_target(g(load<DT>(row, i)), i, y, ty)); },
      [&](int64_t i, int64_t n) { store_part<DT>(out, i, n, fix_target(g(load_part<DT>(row, i, n)), i, y, ty)); });
}

template <int DT, bool NT> void zero_row_t(void* out, int64_t V) {
  int64_t h = stream_head<DT>(out, V, NT);
  over_row(
      V, h, [&](int64_t i) __attribute__((always_inline)) { store<DT, NT>(out, i, vf{}); },
      [&](int64_t i, int64_t n) { store_part<DT>(out, i, n, vf{}); });
}

// ---- dtype / streaming dispatch (once per row) ------------------------------------------------

RowStats stats(int dt, const void* row, int64_t V, float inv, int64_t y) {
  return dt == 0 ? stats_t<0>(row, V, inv, y) : dt == 1 ? stats_t<1>(row, V, inv, y) : stats_t<2>(row, V, inv, y);
}
void exp_scale_store(int dt, const void* row, int64_t V, float zmax, float inv, float c, int64_t y, float ty, void* out,
                     bool nt) {
  nt = nt && can_stream(dt, out);
  if (dt == 0) nt ? exp_scale_store_t<0, true>(row, V, zmax, inv, c, y, ty, out) : exp_scale_store_t<0, false>(row, V, zmax, inv, c, y, ty, out);
  else if (dt == 1) nt ? exp_scale_store_t<1, true>(row, V, zmax, inv, c, y, ty, out) : exp_scale_store_t<1, false>(row, V, zmax, inv, c, y, ty, out);
  else nt ? exp_scale_store_t<2, true>(row, V, zmax, inv, c, y, ty, out) : exp_scale_store_t<2, false>(row, V, zmax, inv, c, y, ty, out);
}
void exp_scale_store_h(int dt, const void* row, int64_t V, float zmax, float inv, float c, float cd, int64_t y, float ty,
                       void* out, bool nt) {
  nt = nt && can_stream(dt, out);
  if (dt == 0) nt ? exp_scale_store_h_t<0, true>(row, V, zmax, inv, c, cd, y, ty, out) : exp_scale_store_h_t<0, false>(row, V, zmax, inv, c, cd, y, ty, out);
  else if (dt == 1) nt ? exp_scale_store_h_t<1, true>(row, V, zmax, inv, c, cd, y, ty, out) : exp_scale_store_h_t<1, false>(row, V, zmax, inv, c, cd, y, ty, out);
  else nt ? exp_scale_store_h_t<2, true>(row, V, zmax, inv, c, cd, y, ty, out) : exp_scale_store_h_t<2, false>(row, V, zmax, inv, c, cd, y, ty, out);
}
void zero_row(int dt, void* out, int64_t V, bool nt) {
  nt = nt && can_stream(dt, out);
  if (dt == 0) nt ? zero_row_t<0, true>(out, V) : zero_row_t<0, false>(out, V);
  else if (dt == 1) nt ? zero_row_t<1, true>(out, V) : zero_row_t<1, false>(out, V);
  else nt ? zero_row_t<2, true>(out, V) : zero_row_t<2, false>(out, V);
}
RowStats pipe_step(int dt, const void* cur, int64_t V, float inv, int64_t y, float* e_cur, float* bmax,
                   const float* e_prev, const float* fac, int64_t y_prev, float ty_prev, void* out_prev, bool nt,
                   bool zero_prev) {
  // Streaming needs every block of the output row aligned: rows whose start is not (V not a
  // multiple of 16) use ordinary stores.
  nt = nt && out_prev && reinterpret_cast<uintptr_t>(out_prev) % (dt == 0 ? 64 : 32) == 0;
#define GRPO_PIPE(D)                                                                                          \
  if (!cur) return nt ? pipe_t<D, false, true>(cur, V, inv, y, e_cur, bmax, e_prev, fac, y_prev, ty_prev, out_prev, zero_prev) \
                      : pipe_t<D, false, false>(cur, V, inv, y, e_cur, bmax, e_prev, fac, y_prev, ty_prev, out_prev, zero_prev); \
  return nt ? pipe_t<D, true, true>(cur, V, inv, y, e_cur, bmax, e_prev, fac, y_prev, ty_prev, out_prev, zero_prev)          \
            : pipe_t<D, true, false>(cur, V, inv, y, e_cur, bmax, e_prev, fac, y_prev, ty_prev, out_prev, zero_prev);
  if (dt == 0) { GRPO_PIPE(0) }
  if (dt == 1) { GRPO_PIPE(1) }
  GRPO_PIPE(2)
#undef GRPO_PIPE
}
void store_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

const RowKernels kTable = {GRPO_ROWK_ISA, stats, exp_scale_store, zero_row, pipe_step, store_fence, exp_scale_store_h};

}  // namespace GRPO_ROWK_NS
}  // namespace grpo
