// grpoLossFromLogits on the GPU: spec §7 = §1 per row + §4-§6 per token + dL/dz_v =
// g_n·(1[v=y] − p_v)/τ. S sequences × T tokens = N rows of V logits (f32 / bf16 / f16), row
// n = i·T + t. No N×V scratch: the gradient goes to a separate buffer or over the logits.
//
//   pass A  (one block per row)        ℓ, H, zmax, s = Σexp, 1 − p_y per row: one read of the row
//   core    (one thread per sequence)  the per-token loss core of native/ops/grpo_loss.cc, in the
//                                      same order and in double: n_i, n_batch, GSPO's s_i (its
//                                      second pass over the sequence), L, dL/dℓ, metric sums;
//                                      totals summed serially in sequence order, so the loss and
//                                      metrics are the CPU's bits given the same ℓ and H
//   pass B  (one block per row)        the gradient row, reading the row a second time
// The top-entropy threshold (torch.quantile over the masked entropies) is computed on the host
// from the N entropies (O(N), not O(N·V)) with the CPU's algorithm.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../native/device/cuda_ops.h"
#include "row_stats.cuh"

namespace grpo {

namespace {

constexpr int kThreads = 256;

struct RowInfo {
  double s, one_minus_py;
  float zmax;
};

template <int DT>
__global__ void __launch_bounds__(kThreads) rows_pass_a(const void* __restrict__ logits, const int32_t* __restrict__ targets, int64_t V, float inv,
                                                        double inv_d, float* __restrict__ logp, float* __restrict__ entropy, RowInfo* __restrict__ info) {
  __shared__ cuda::RowAcc red[32];
  const int64_t n = blockIdx.x;
  const typename cuda::Elem<DT>::T* row = static_cast<const typename cuda::Elem<DT>::T*>(logits) + n * V;
  const int64_t y = targets[n];
  const bool ok = y >= 0 && y < V;
  cuda::RowAcc acc = cuda::row_stats<DT>(row, V, ok ? y : -1, inv, red);
  if (threadIdx.x == 0) {
    const float nan = __int_as_float(0x7fc00000);
    if (!ok) {
      logp[n] = entropy[n] = nan;
      if (info) info[n] = RowInfo{0.0, 0.0, nan};
      return;
    }
    cuda::RowOut r = cuda::finish_row(cuda::to_f<DT>(row[y]), acc, inv, inv_d);
    logp[n] = static_cast<float>(r.logp);
    entropy[n] = static_cast<float>(r.entropy);
    if (info) info[n] = RowInfo{r.s, r.one_minus_py, r.zmax};
  }
}

struct SeqSums {
  double loss, kl, entropy, ratio, clip_low, clip_high, clip_region;
};

struct CoreArgs {
  const float* logp;
  const float* old_logp;
  const float* ref_logp;
  const float* advantages;
  const uint8_t* mask;
  const float* entropy;
  int64_t S, T;
  GrpoOptions o;
  bool select;
  double threshold;
  float* grad_logp;
  double* n_seq;  // [S]
  double* n_batch;  // [1]
  SeqSums* sums;  // [S]
  GrpoMetrics* metrics;  // [1]
};

__global__ void core_counts(CoreArgs c) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < c.S; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t k = 0;
    for (int64_t t = 0; t < c.T; ++t) k += c.mask[i * c.T + t] != 0;
    c.n_seq[i] = static_cast<double>(k);
  }
}

__global__ void core_batch(CoreArgs c) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  double nb = 0;
  for (int64_t i = 0; i < c.S; ++i) nb += c.n_seq[i];  // sequence order, as the CPU
  *c.n_batch = nb;
}

// grpo_loss_cpu's pass 3 for sequence i (native/ops/grpo_loss.cc), statement for statement.
__global__ void core_loss(CoreArgs c) {
  const GrpoOptions& o = c.o;
  const int64_t T = c.T;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < c.S; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = i * T;
    const uint8_t* m = c.mask + base;
    const float* lp = c.logp + base;
    const float* old = c.old_logp ? c.old_logp + base : nullptr;
    const float* ref = c.ref_logp ? c.ref_logp + base : nullptr;
    const float* ent = c.entropy ? c.entropy + base : nullptr;
    float* g = c.grad_logp ? c.grad_logp + base : nullptr;
    const double A = c.advantages[i];
    const double n_i = c.n_seq[i];
    const double w = aggregation_weight(o, n_i, *c.n_batch, c.S, T);
    const double inv_n = 1.0 / (n_i > 1.0 ? n_i : 1.0);
    SeqSums s{0, 0, 0, 0, 0, 0, 0};
    double seq_ratio = 1.0;
    if (o.level == Level::Sequence && old) {
      double lr = 0;
      for (int64_t t = 0; t < T; ++t)
        if (m[t]) lr += static_cast<double>(lp[t]) - static_cast<double>(old[t]);
      seq_ratio = exp(lr * inv_n);
    }
    double seq_coupling = 0;
    for (int64_t t = 0; t < T; ++t) {
      if (!m[t]) {
        if (g) g[t] = 0.0f;
        continue;
      }
      const double l = lp[t];
      double rho = seq_ratio;
      if (o.level == Level::Token) rho = old ? exp(l - static_cast<double>(old[t])) : 1.0;
      const double emask = (c.select && !(static_cast<double>(ent[t]) >= c.threshold)) ? 0.0 : 1.0;
      PolicyValue pv = policy_term(rho, A, l, o);
      KlValue kv{0.0, 0.0};
      if (ref) kv = kl_estimate(l, ref[t], o.kl_estimator, o.clamp_log_ratio);
      const double L = emask * pv.P + o.beta * kv.d;
      s.loss += w * L;
      s.kl += kv.d;
      if (ent) s.entropy += ent[t];
      s.ratio += rho;
      s.clip_low += pv.low_clipped;
      s.clip_high += pv.high_clipped;
      s.clip_region += pv.low_clipped || pv.high_clipped;
      if (g) {
        double direct = w * (emask * pv.dP_dlogp + o.beta * kv.grad);
        if (o.level == Level::Token)
          direct += w * emask * pv.dP_drho * rho;
        else
          seq_coupling += w * emask * pv.dP_drho;
        g[t] = static_cast<float>(direct);
      }
    }
    if (g && o.level == Level::Sequence && seq_coupling != 0.0) {
      const double extra = seq_coupling * seq_ratio * inv_n;
      for (int64_t t = 0; t < T; ++t)
        if (m[t]) g[t] = static_cast<float>(static_cast<double>(g[t]) + extra);
    }
    c.sums[i] = s;
  }
}

__global__ void core_totals(CoreArgs c) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  SeqSums tot{0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < c.S; ++i) {
    tot.loss += c.sums[i].loss;
    tot.kl += c.sums[i].kl;
    tot.entropy += c.sums[i].entropy;
    tot.ratio += c.sums[i].ratio;
    tot.clip_low += c.sums[i].clip_low;
    tot.clip_high += c.sums[i].clip_high;
    tot.clip_region += c.sums[i].clip_region;
  }
  const double nb = *c.n_batch, inv_batch = nb > 0 ? 1.0 / nb : 0.0;
  GrpoMetrics& mt = *c.metrics;
  mt.loss = tot.loss;
  mt.kl = tot.kl * inv_batch;
  mt.entropy = tot.entropy * inv_batch;
  mt.ratio = tot.ratio * inv_batch;
  mt.clip_low = tot.clip_low * inv_batch;
  mt.clip_high = tot.clip_high * inv_batch;
  mt.clip_region = tot.clip_region * inv_batch;
  mt.masked_tokens = nb;
}

// dL/dz of row n: out_v = exp((z_v − zmax)/τ)·c (v ≠ y), out_y = ty, c = −g/(τ s),
// ty = g (1 − p_y)/τ; zero where g = 0 (masked, clipped, deselected). `out` may be the logits.
template <int DT>
__global__ void __launch_bounds__(kThreads) rows_pass_b(const void* logits, const int32_t* __restrict__ targets, int64_t V, float inv,
                                                        double inv_d, const uint8_t* __restrict__ mask, const float* __restrict__ grad_logp,
                                                        const RowInfo* __restrict__ info, void* out) {
  typedef typename cuda::Elem<DT>::T T;
  const int64_t n = blockIdx.x;
  const T* row = static_cast<const T*>(logits) + n * V;
  T* orow = static_cast<T*>(out) + n * V;
  const double g = mask[n] ? static_cast<double>(grad_logp[n]) : 0.0;
  const int64_t y = targets[n];
  const RowInfo ri = info[n];
  const float c = static_cast<float>(-g * inv_d / ri.s);
  const float ty = static_cast<float>(g * inv_d * ri.one_minus_py);
  const float zmax = ri.zmax;
  if (g == 0) {
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) orow[v] = cuda::from_f<DT>(0.f);
    return;
  }
  // Each element is read and then written by the same thread: in place is safe.
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
    float z = cuda::to_f<DT>(row[v]);
    float e = expf(fmaxf((z - zmax) * inv, -88.f));
    orow[v] = cuda::from_f<DT>(v == y ? ty : e * c);
  }
}

size_t align_up(size_t x) { return (x + 15) & ~size_t(15); }

// torch.quantile(x, q), linear interpolation: native/ops/grpo_loss.cc's quantile_linear.
double quantile_linear(std::vector<float>& x, double q) {
  const size_t n = x.size();
  double pos = q * static_cast<double>(n - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  if (lo > n - 1) lo = n - 1;
  size_t hi = lo + 1 < n ? lo + 1 : lo;
  std::nth_element(x.begin(), x.begin() + lo, x.end());
  double vlo = x[lo];
  double frac = pos - static_cast<double>(lo);
  if (hi == lo || frac == 0.0) return vlo;
  double vhi = *std::min_element(x.begin() + lo + 1, x.end());
  return vlo + (vhi - vlo) * frac;
}

template <int DT> void run_rows_a(const GrpoLossFromLogitsArgs& a, float inv, double inv_d, RowInfo* info, cudaStream_t s) {
  cuda::launch("grpo_loss_from_logits pass A", rows_pass_a<DT>, dim3(static_cast<unsigned>(a.S * a.T)), dim3(kThreads), 0, s, a.logits.data,
               a.targets, a.V, inv, inv_d, a.logp, a.entropy, info);
}
template <int DT>
void run_rows_b(const GrpoLossFromLogitsArgs& a, float inv, double inv_d, const float* g, const RowInfo* info, cudaStream_t s) {
  cuda::launch("grpo_loss_from_logits pass B", rows_pass_b<DT>, dim3(static_cast<unsigned>(a.S * a.T)), dim3(kThreads), 0, s,
               static_cast<const void*>(a.logits.data), a.targets, a.V, inv, inv_d, a.mask, g, static_cast<const RowInfo*>(info),
               a.grad_logits.data);
}

}  // namespace

void grpo_loss_from_logits_cuda(GrpoLossFromLogitsArgs& a, cudaStream_t stream) {
  a.metrics = GrpoMetrics{};
  const int64_t S = a.S, T = a.T, N = S * T;
  if (N <= 0) return;
  const bool grad = a.grad_mode != GradMode::None && a.grad_logits.data != nullptr;
  const float inv = 1.0f / a.temperature;
  const double inv_d = 1.0 / static_cast<double>(a.temperature);
  const size_t o_info = 0, o_g = o_info + align_up(N * sizeof(RowInfo)), o_nseq = o_g + align_up(N * 4), o_nb = o_nseq + align_up(S * 8),
               o_sums = o_nb + 16, o_met = o_sums + align_up(S * sizeof(SeqSums)), total = o_met + align_up(sizeof(GrpoMetrics));
  auto* base = static_cast<unsigned char*>(cuda::workspace(total, stream));
  RowInfo* info = grad ? reinterpret_cast<RowInfo*>(base + o_info) : nullptr;

  switch (a.logits.dtype) {
    case DType::BF16: run_rows_a<1>(a, inv, inv_d, info, stream); break;
    case DType::F16: run_rows_a<2>(a, inv, inv_d, info, stream); break;
    default: run_rows_a<0>(a, inv, inv_d, info, stream); break;
  }

  CoreArgs c;
  c.logp = a.logp;
  c.old_logp = a.old_logp;
  c.ref_logp = a.ref_logp;
  c.advantages = a.advantages;
  c.mask = a.mask;
  c.entropy = a.entropy;
  c.S = S;
  c.T = T;
  c.o = a.opt;
  c.grad_logp = a.grad_logp ? a.grad_logp : (grad ? reinterpret_cast<float*>(base + o_g) : nullptr);
  c.n_seq = reinterpret_cast<double*>(base + o_nseq);
  c.n_batch = reinterpret_cast<double*>(base + o_nb);
  c.sums = reinterpret_cast<SeqSums*>(base + o_sums);
  c.metrics = reinterpret_cast<GrpoMetrics*>(base + o_met);
  c.select = false;
  c.threshold = 0;

  const unsigned seq_threads = 64, seq_blocks = cuda::blocks_for(S, seq_threads, 1024);
  cuda::launch("grpo loss core: counts", core_counts, dim3(seq_blocks), dim3(seq_threads), 0, stream, c);
  cuda::launch("grpo loss core: batch", core_batch, dim3(1), dim3(32), 0, stream, c);
  if (a.opt.top_entropy_quantile < 1.0) {
    // The threshold over the masked entropies, on the host: N floats, not N×V.
    std::vector<float> ent(static_cast<size_t>(N));
    std::vector<uint8_t> m(static_cast<size_t>(N));
    GRPO_CUDA_CHECK(cudaMemcpyAsync(ent.data(), a.entropy, N * 4, cudaMemcpyDeviceToHost, stream));
    GRPO_CUDA_CHECK(cudaMemcpyAsync(m.data(), a.mask, N, cudaMemcpyDeviceToHost, stream));
    GRPO_CUDA_CHECK(cudaStreamSynchronize(stream));
    std::vector<float> kept;
    for (int64_t n = 0; n < N; ++n)
      if (m[n]) kept.push_back(ent[n]);
    if (!kept.empty()) {
      c.select = true;
      c.threshold = quantile_linear(kept, 1.0 - a.opt.top_entropy_quantile);
    }
  }
  cuda::launch("grpo loss core: loss", core_loss, dim3(seq_blocks), dim3(seq_threads), 0, stream, c);
  cuda::launch("grpo loss core: totals", core_totals, dim3(1), dim3(32), 0, stream, c);

  if (grad) {
    switch (a.logits.dtype) {
      case DType::BF16: run_rows_b<1>(a, inv, inv_d, c.grad_logp, info, stream); break;
      case DType::F16: run_rows_b<2>(a, inv, inv_d, c.grad_logp, info, stream); break;
      default: run_rows_b<0>(a, inv, inv_d, c.grad_logp, info, stream); break;
    }
  }
  GRPO_CUDA_CHECK(cudaMemcpyAsync(&a.metrics, c.metrics, sizeof(GrpoMetrics), cudaMemcpyDeviceToHost, stream));
  GRPO_CUDA_CHECK(cudaStreamSynchronize(stream));
}

}  // namespace grpo
