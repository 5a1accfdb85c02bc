// sample on the GPU: spec §9, the algorithm written down at the top of native/ops/sample.cc,
// with its scalar pieces (the float32 exponential E, the Philox word of an entry, the Gumbel
// key) from native/common/sample_math.h, so the same seed gives the same tokens as the CPU.
// R rows, V vocab entries; one block per row; no sort of V:
//   pass 1  M = max u (u = z/τ, NaN -> −inf) and the smallest v with u == M
//   pass 2  S = Σ E(u − M) in double
//   top-k   T_k = the k-th largest u (multiplicity counted): radix select on the order-preserving
//           32-bit key of u, four 8-bit digit passes with a 256-bin count histogram
//   top-p   the largest u_t of K1 with Σ_{K1, u ≥ u_t} e ≥ p·S1: the same radix select with the
//           histogram weighted by e (double); equal u have equal e, so this is the cut of the
//           descending prefix sums (only a last-bit difference of a double sum can move it)
//   min-p   e ≥ m, evaluated in the draw
//   draw    argmax over the kept set of (double)u − log(−log U(x_v)), ties to the smaller v
// Every pass re-reads the row (u recomputed: the division is IEEE, as on the CPU).
#include "../native/common/sample_math.h"
#include "../native/device/cuda_ops.h"
#include "common.cuh"

namespace grpo {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ uint32_t order_key(float u) {
  uint32_t b = __float_as_uint(u);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

template <int DT> __device__ __forceinline__ float load_u(const typename cuda::Elem<DT>::T* row, int64_t v, float tau, bool greedy) {
  float x = cuda::to_f<DT>(row[v]);
  if (!greedy) x = x / tau;
  return x != x ? -INFINITY : x;
}

struct Shared {
  double hist[256];
  float redf[32];
  long long redi[32];
  double redd[32];
  uint32_t prefix;
  double above;
};

__device__ __forceinline__ float block_max(float v, float* red) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nw = (blockDim.x + 31u) >> 5;
  __syncthreads();
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float r = lane < nw ? red[lane] : -INFINITY;
  for (int o = 16; o > 0; o >>= 1) r = fmaxf(r, __shfl_xor_sync(0xffffffffu, r, o));
  return r;
}

__device__ __forceinline__ long long block_min_ll(long long v, long long* red) {
  for (int o = 16; o > 0; o >>= 1) {
    long long x = __shfl_xor_sync(0xffffffffu, v, o);
    v = x < v ? x : v;
  }
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nw = (blockDim.x + 31u) >> 5;
  __syncthreads();
  if (lane == 0) red[warp] = v;
  __syncthreads();
  long long r = lane < nw ? red[lane] : 0x7fffffffffffffffLL;
  for (int o = 16; o > 0; o >>= 1) {
    long long x = __shfl_xor_sync(0xffffffffu, r, o);
    r = x < r ? x : r;
  }
  return r;
}

// The largest key t (an element's key) with W(key >= t) >= target over the entries with
// key >= lo_key, W counting each entry with weight E(u − M) (weighted) or 1. If the whole
// weight stays below target (rounding), the smallest key of those entries.
template <int DT>
__device__ uint32_t radix_select(const typename cuda::Elem<DT>::T* row, int64_t V, float tau, bool greedy, float M, uint32_t lo_key, bool weighted,
                                 double target, Shared& sh) {
  if (threadIdx.x == 0) {
    sh.prefix = 0;
    sh.above = 0;
  }
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < 256; b += blockDim.x) sh.hist[b] = 0;
    __syncthreads();
    const uint32_t pmask = shift == 24 ? 0u : (0xffffffffu << (shift + 8));
    const uint32_t prefix = sh.prefix;
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
      float u = load_u<DT>(row, v, tau, greedy);
      uint32_t k = order_key(u);
      if (k < lo_key || (k & pmask) != prefix) continue;
      atomicAdd(&sh.hist[(k >> shift) & 255u], weighted ? static_cast<double>(sample_exp(u - M)) : 1.0);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      double above = sh.above;
      int chosen = -1, lowest = -1;
      for (int b = 255; b >= 0; --b) {
        double hb = sh.hist[b];
        if (hb == 0) continue;
        lowest = b;
        if (above + hb >= target) {
          chosen = b;
          break;
        }
        above += hb;
      }
      if (chosen < 0) {  // rounding left the target unreached: keep everything (the lowest entry)
        chosen = lowest < 0 ? 0 : lowest;
        above = -INFINITY;  // every later level also takes its lowest non-empty bin
      }
      sh.above = above;
      sh.prefix = prefix | (static_cast<uint32_t>(chosen) << shift);
    }
    __syncthreads();
  }
  return sh.prefix;
}

template <int DT>
__global__ void __launch_bounds__(kThreads) sample_kernel(const void* __restrict__ logits, int64_t V, const float* __restrict__ temperature,
                                                          const int32_t* __restrict__ top_k, const float* __restrict__ top_p,
                                                          const float* __restrict__ min_p, uint32_t seed_lo, uint32_t seed_hi, uint32_t step,
                                                          const uint32_t* __restrict__ row_ids, int32_t* __restrict__ tokens,
                                                          float* __restrict__ logp_out, float* __restrict__ trunc_out) {
  __shared__ Shared sh;
  const int64_t b = blockIdx.x;
  typedef typename cuda::Elem<DT>::T T;
  const T* row = static_cast<const T*>(logits) + b * V;
  const float tau = temperature[b];
  const bool greedy = !(tau > 0.f);
  const uint32_t row_id = row_ids ? row_ids[b] : static_cast<uint32_t>(b);
  const float nan = __int_as_float(0x7fc00000);

  // pass 1: M and the smallest v with u == M
  float m = -INFINITY;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) m = fmaxf(m, load_u<DT>(row, v, tau, greedy));
  const float M = block_max(m, sh.redf);
  long long first = 0x7fffffffffffffffLL;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x)
    if (load_u<DT>(row, v, tau, greedy) == M) {
      first = v;
      break;
    }
  first = block_min_ll(first, sh.redi);
  if (M == INFINITY || M == -INFINITY) {  // degenerate row
    if (threadIdx.x == 0) {
      tokens[b] = static_cast<int32_t>(first);
      logp_out[b] = nan;
      if (trunc_out) trunc_out[b] = nan;
    }
    return;
  }

  // pass 2: S
  double s = 0;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) s += sample_exp(load_u<DT>(row, v, tau, greedy) - M);
  const double S = cuda::block_sum(s, sh.redd);
  if (greedy) {
    if (threadIdx.x == 0) {
      tokens[b] = static_cast<int32_t>(first);
      logp_out[b] = static_cast<float>(-log(S));
      if (trunc_out) trunc_out[b] = 0.f;
    }
    return;
  }

  // the kept set: u's key >= lo (top-k and top-p), and E(u − M) >= minp (min-p)
  const int32_t k = top_k[b];
  const float p = top_p[b];
  const float mp_raw = min_p[b];
  const bool use_k = k > 0 && k < V, use_p = p < 1.f, use_m = mp_raw > 0.f;
  const float minp = mp_raw > 1.f ? 1.f : mp_raw;
  uint32_t lo = 0;
  if (use_k) lo = radix_select<DT>(row, V, tau, greedy, M, 0u, false, static_cast<double>(k), sh);
  if (use_p) {
    double S1 = S;
    if (use_k) {
      double s1 = 0;
      for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
        float u = load_u<DT>(row, v, tau, greedy);
        if (order_key(u) >= lo) s1 += sample_exp(u - M);
      }
      S1 = cuda::block_sum(s1, sh.redd);
    }
    lo = radix_select<DT>(row, V, tau, greedy, M, lo, true, static_cast<double>(p) * S1, sh);
  }

  // draw: Gumbel-max over the kept set; also S3 = Σ_{K3} e
  double best = -INFINITY, s3 = 0;
  long long best_v = 0x7fffffffffffffffLL;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
    float u = load_u<DT>(row, v, tau, greedy);
    if (order_key(u) < lo) continue;
    float e = sample_exp(u - M);
    if (use_m && !(e >= minp)) continue;
    s3 += e;
    double key = sample_gumbel_key(u, sample_random_bits(static_cast<uint32_t>(v), row_id, step, seed_lo, seed_hi));
    if (key > best || (key == best && v < best_v)) {
      best = key;
      best_v = v;
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    double ok = __shfl_xor_sync(0xffffffffu, best, o);
    long long ov = __shfl_xor_sync(0xffffffffu, best_v, o);
    if (ok > best || (ok == best && ov < best_v)) {
      best = ok;
      best_v = ov;
    }
  }
  __shared__ double wkey[32];
  __shared__ long long wv[32];
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nw = (blockDim.x + 31u) >> 5;
  if (lane == 0) {
    wkey[warp] = best;
    wv[warp] = best_v;
  }
  const double S3 = cuda::block_sum(s3, sh.redd);  // its barriers also publish wkey / wv
  if (threadIdx.x == 0) {
    double bk = -INFINITY;
    long long bv = 0x7fffffffffffffffLL;
    for (unsigned w = 0; w < nw; ++w)
      if (wkey[w] > bk || (wkey[w] == bk && wv[w] < bv)) {
        bk = wkey[w];
        bv = wv[w];
      }
    const float u_tok = load_u<DT>(row, bv, tau, greedy);
    tokens[b] = static_cast<int32_t>(bv);
    const double d = static_cast<double>(u_tok) - static_cast<double>(M);
    logp_out[b] = static_cast<float>(d - log(S));
    if (trunc_out) trunc_out[b] = static_cast<float>(d - log(S3));
  }
}

template <int DT> void run(const SampleArgs& a, cudaStream_t s) {
  cuda::launch("sample_kernel", sample_kernel<DT>, dim3(static_cast<unsigned>(a.R)), dim3(kThreads), 0, s, static_cast<const void*>(a.logits.data),
               a.V, a.temperature, a.top_k, a.top_p, a.min_p, a.seed_lo, a.seed_hi, a.step, a.row_ids, a.tokens, a.logp, a.trunc_logp);
}

}  // namespace

void sample_cuda(const SampleArgs& a, cudaStream_t stream) {
  if (a.R == 0) return;
  switch (a.logits.dtype) {
    case DType::BF16: run<1>(a, stream); break;
    case DType::F16: run<2>(a, stream); break;
    default: run<0>(a, stream); break;
  }
}

}  // namespace grpo
