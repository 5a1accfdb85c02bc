// grpoLossFromLogits on the GPU: spec §7 = §1 per row + §4-§6 per token + dL/dz_v =
// g_n·(1[v=y] − p_v)/τ. S sequences × T tokens = N rows of V logits (f32 / bf16 / f16), row
// n = i·T + t. No N×V scratch: the gradient goes to a separate buffer or over the logits.
//
// Token-level ratio without top-entropy selection (the common case): one pass. g_n depends only on
// row n and the masked-token counts, so each block reads its row once from memory (stats), finishes
// ℓ, H and g_n (the CPU's one-pass formula, native/ops/grpo_loss_from_logits.cc) and writes the
// gradient row re-reading the row from L2; the loss core then gives the loss, metrics and dL/dℓ.
// Otherwise (GSPO, top-entropy selection: g needs every row first), three steps:
//   pass A  (one block per row)        ℓ, H, zmax, s = Σexp, 1 − p_y per row: one read of the row
//   core    (one thread per sequence)  cuda/grpo_loss.cu: the per-token loss core of
//                                      native/ops/grpo_loss.cc in the same order and in double
//                                      (GSPO's s_i is its first loop over the sequence), so the
//                                      loss and metrics are the CPU's bits given the same ℓ and H
//   pass B  (one block per row)        the gradient row, reading the row a second time
#include "../native/device/cuda_ops.h"
#include "grpo_loss_core.h"
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

struct OnePass {
  const float* old_logp;
  const float* ref_logp;
  const float* advantages;
  const uint8_t* mask;
  const double* n_seq;
  const double* n_batch;
  int64_t S, T;
  GrpoOptions o;
};

// ℓ, H and the gradient row in one block: stats from one read, g_n on thread 0, then the row
// again (from L2) into the gradient with 16-byte loads and stores. `out` may be the logits.
template <int DT>
__global__ void __launch_bounds__(kThreads) rows_one_pass(const void* logits, const int32_t* __restrict__ targets, int64_t V, float inv,
                                                          double inv_d, float* __restrict__ logp, float* __restrict__ entropy, OnePass p,
                                                          void* out) {
  typedef typename cuda::Elem<DT>::T T;
  __shared__ cuda::RowAcc red[32];
  __shared__ float coef[3];  // c, ty, zmax
  __shared__ int zero_row;
  const int64_t n = blockIdx.x;
  const T* row = static_cast<const T*>(logits) + n * V;
  T* orow = static_cast<T*>(out) + n * V;
  const int64_t y = targets[n];
  const bool ok = y >= 0 && y < V;
  cuda::RowAcc acc = cuda::row_stats<DT>(row, V, ok ? y : -1, inv, red);
  if (threadIdx.x == 0) {
    zero_row = 1;
    if (!ok) {
      logp[n] = entropy[n] = __int_as_float(0x7fc00000);
    } else {
      cuda::RowOut r = cuda::finish_row(cuda::to_f<DT>(row[y]), acc, inv, inv_d);
      const float lp = static_cast<float>(r.logp);
      logp[n] = lp;
      entropy[n] = static_cast<float>(r.entropy);
      if (p.mask[n]) {
        // g_n = a_n·(∂P/∂ρ·ρ + ∂P/∂ℓ + β·∂D/∂ℓ), from the float32 ℓ the loss core will see
        const int64_t i = n / p.T;
        const double l = lp, A = p.advantages[i];
        double g = token_loss_grad(l, p.old_logp ? static_cast<double>(p.old_logp[n]) : 0.0, p.old_logp != nullptr,
                                   p.ref_logp ? p.ref_logp + n : nullptr, A, p.o);
        g *= aggregation_weight(p.o, p.n_seq[i], *p.n_batch, p.S, p.T);
        coef[0] = static_cast<float>(-g * inv_d / r.s);
        coef[1] = static_cast<float>(g * inv_d * r.one_minus_py);
        coef[2] = r.zmax;
        zero_row = 0;
      }
    }
  }
  __syncthreads();  // also orders every read of the row above before the writes below (in place)
  if (zero_row) {
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) orow[v] = cuda::from_f<DT>(0.f);
    return;
  }
  const float c = coef[0], ty = coef[1], zmax = coef[2];
  cuda::map_row<DT>(row, orow, V, [&](int64_t v, float z) { return v == y ? ty : expf(fmaxf((z - zmax) * inv, -88.f)) * c; });
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
  // 16-byte loads and stores; each element is read and then written by the same thread, so
  // in place is safe.
  cuda::map_row<DT>(row, orow, V, [&](int64_t v, float z) { return v == y ? ty : expf(fmaxf((z - zmax) * inv, -88.f)) * c; });
}

size_t align_up(size_t x) { return (x + 15) & ~size_t(15); }

template <int DT> void run_rows_a(const GrpoLossFromLogitsArgs& a, float inv, double inv_d, RowInfo* info, cudaStream_t s) {
  cuda::launch("grpo_loss_from_logits pass A", rows_pass_a<DT>, dim3(static_cast<unsigned>(a.S * a.T)), dim3(kThreads), 0, s, a.logits.data,
               a.targets, a.V, inv, inv_d, a.logp, a.entropy, info);
}
template <int DT> void run_one_pass(const GrpoLossFromLogitsArgs& a, float inv, double inv_d, const OnePass& p, cudaStream_t s) {
  cuda::launch("grpo_loss_from_logits one pass", rows_one_pass<DT>, dim3(static_cast<unsigned>(a.S * a.T)), dim3(kThreads), 0, s,
               static_cast<const void*>(a.logits.data), a.targets, a.V, inv, inv_d, a.logp, a.entropy, p, a.grad_logits.data);
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
  const bool one_pass = grad && a.opt.level == Level::Token && !(a.opt.top_entropy_quantile < 1) && a.opt.policy_loss != PolicyLoss::GeoMean &&
                        a.opt.rollout_is == RolloutIs::Off;  // the IS weight comes from the loss core
  const size_t o_info = 0, o_g = o_info + align_up(N * sizeof(RowInfo)), o_nseq = o_g + align_up(N * 4), o_nb = o_nseq + align_up(S * 8),
               total = o_nb + 16;
  auto* base = static_cast<unsigned char*>(cuda::workspace(total, stream));
  RowInfo* info = grad && !one_pass ? reinterpret_cast<RowInfo*>(base + o_info) : nullptr;

  if (one_pass) {
    OnePass p;
    p.old_logp = a.old_logp;
    p.ref_logp = a.ref_logp;
    p.advantages = a.advantages;
    p.mask = a.mask;
    p.n_seq = reinterpret_cast<double*>(base + o_nseq);
    p.n_batch = reinterpret_cast<double*>(base + o_nb);
    p.S = S;
    p.T = T;
    p.o = a.opt;
    grpo_loss_counts_cuda(a.mask, S, T, const_cast<double*>(p.n_seq), const_cast<double*>(p.n_batch), stream);
    switch (a.logits.dtype) {
      case DType::BF16: run_one_pass<1>(a, inv, inv_d, p, stream); break;
      case DType::F16: run_one_pass<2>(a, inv, inv_d, p, stream); break;
      default: run_one_pass<0>(a, inv, inv_d, p, stream); break;
    }
  } else {
    switch (a.logits.dtype) {
      case DType::BF16: run_rows_a<1>(a, inv, inv_d, info, stream); break;
      case DType::F16: run_rows_a<2>(a, inv, inv_d, info, stream); break;
      default: run_rows_a<0>(a, inv, inv_d, info, stream); break;
    }
  }

  GrpoLossArgs la = per_token_loss_args(a);
  float* g = a.grad_logp ? a.grad_logp : (grad ? reinterpret_cast<float*>(base + o_g) : nullptr);
  grpo_loss_core_cuda(la, g, &a.metrics, stream);

  if (grad && !one_pass) {
    switch (a.logits.dtype) {
      case DType::BF16: run_rows_b<1>(a, inv, inv_d, g, info, stream); break;
      case DType::F16: run_rows_b<2>(a, inv, inv_d, g, info, stream); break;
      default: run_rows_b<0>(a, inv, inv_d, g, info, stream); break;
    }
  }
  GRPO_CUDA_CHECK(cudaStreamSynchronize(stream));
}

}  // namespace grpo
