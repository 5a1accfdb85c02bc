// grpoLossFromHidden on the GPU: spec §8. Shapes: S sequences × T tokens = N rows of hidden
// states h [N, D] (f32 / bf16 / f16), output weight W [V, D] (f32 / bf16 / f16), logits
// z = h·Wᵀ held one chunk of C rows at a time in a [C, V] float workspace.
//
// Always two passes over the chunks (the gradient of a row needs g = dL/dℓ, which the loss
// core gives once every row's ℓ/H is known — for GSPO and top-entropy selection necessarily,
// and on the GPU recomputing a chunk costs less than a second code path for the token case):
//   pass A  per chunk: Z = Hc·Wᵀ (gemm), one block per row: ℓ, H, zmax, Σexp (row_stats.cuh,
//           the CPU's finish_row in double)
//   core    cuda/grpo_loss.cu: the loss, metrics and g of native/ops/grpo_loss.cc, same order
//   pass B  per chunk: Z again (the same bits), dZ = g·(1[v=y] − p)/τ over Z in place, then
//           dh[chunk] = dZ·W and dW += dZᵀ·Hc (gemm).
// The gemm is a plain 16×16 shared-memory tile (one output per thread): every output element
// is a sum over k in ascending order starting from the accumulator (dW's previous value), so
// results do not depend on the grid, and dW does not depend on how rows are chunked.
#include "../native/device/cuda_ops.h"
#include "grpo_loss_core.h"
#include "row_stats.cuh"

namespace grpo {

namespace {

constexpr int kThreads = 256;
constexpr int kTile = 16;  // kTile × kTile outputs per block of kThreads

// C[m, n] = (acc ? C[m, n] : 0) + Σ_k A(m, k)·B(k, n) over k ascending, with
// A(m, k) = A[m·sam + k·sak] of dtype DA and B(k, n) = B[k·sbk + n·sbn] of dtype DB;
// C float, row-major with row stride ldc. Strides express every transpose the op needs.
template <int DA, int DB>
__global__ void __launch_bounds__(kThreads) gemm(const void* __restrict__ A, int64_t sam, int64_t sak, const void* __restrict__ B,
                                                 int64_t sbk, int64_t sbn, float* C, int64_t ldc, int64_t M, int64_t Nc, int64_t K, int acc) {
  __shared__ float As[kTile][kTile + 1];
  __shared__ float Bs[kTile][kTile + 1];
  const int tx = static_cast<int>(threadIdx.x) % kTile, ty = static_cast<int>(threadIdx.x) / kTile;
  const int64_t m = static_cast<int64_t>(blockIdx.y) * kTile + ty, n = static_cast<int64_t>(blockIdx.x) * kTile + tx;
  const bool inside = m < M && n < Nc;
  float s = inside && acc ? C[m * ldc + n] : 0.f;
  for (int64_t k0 = 0; k0 < K; k0 += kTile) {
    // row m of A and column n of B, kTile entries of k each, staged through shared memory
    const int64_t am = static_cast<int64_t>(blockIdx.y) * kTile + ty, ka = k0 + tx;
    const int64_t kb = k0 + ty, bn = static_cast<int64_t>(blockIdx.x) * kTile + tx;
    As[ty][tx] = am < M && ka < K ? load_as_float<DA>(A, am * sam + ka * sak) : 0.f;
    Bs[ty][tx] = kb < K && bn < Nc ? load_as_float<DB>(B, kb * sbk + bn * sbn) : 0.f;
    __syncthreads();
    const int kn = K - k0 < kTile ? static_cast<int>(K - k0) : kTile;
    for (int k = 0; k < kn; ++k) s = fmaf(As[ty][k], Bs[k][tx], s);
    __syncthreads();
  }
  if (inside) C[m * ldc + n] = s;
}

template <int DA, int DB>
void run_gemm(const char* name, const void* A, int64_t sam, int64_t sak, const void* B, int64_t sbk, int64_t sbn, float* C, int64_t ldc,
              int64_t M, int64_t Nc, int64_t K, bool acc, cudaStream_t s) {
  dim3 grid(static_cast<unsigned>((Nc + kTile - 1) / kTile), static_cast<unsigned>((M + kTile - 1) / kTile));
  cuda::launch(name, gemm<DA, DB>, grid, dim3(kThreads), 0, s, A, sam, sak, B, sbk, sbn, C, ldc, M, Nc, K, acc ? 1 : 0);
}

// Dispatch over the two input dtypes (0 f32, 1 bf16, 2 f16).
void gemm_any(const char* name, int da, int db, const void* A, int64_t sam, int64_t sak, const void* B, int64_t sbk, int64_t sbn, float* C,
              int64_t ldc, int64_t M, int64_t Nc, int64_t K, bool acc, cudaStream_t s) {
#define GRPO_GEMM_CASE(X, Y) \
  if (da == X && db == Y) return run_gemm<X, Y>(name, A, sam, sak, B, sbk, sbn, C, ldc, M, Nc, K, acc, s);
  GRPO_GEMM_CASE(0, 0) GRPO_GEMM_CASE(0, 1) GRPO_GEMM_CASE(0, 2)
  GRPO_GEMM_CASE(1, 0) GRPO_GEMM_CASE(1, 1) GRPO_GEMM_CASE(1, 2)
  GRPO_GEMM_CASE(2, 0) GRPO_GEMM_CASE(2, 1) GRPO_GEMM_CASE(2, 2)
#undef GRPO_GEMM_CASE
}

struct RowInfo {
  double s, one_minus_py;
  float zmax;
};

// ℓ, H and the softmax sums of chunk row j (logits z + j·V), one block per row.
__global__ void __launch_bounds__(kThreads) chunk_stats(const float* __restrict__ z, const int32_t* __restrict__ targets, int64_t r0, int64_t V,
                                                        float inv, double inv_d, float* __restrict__ logp, float* __restrict__ entropy,
                                                        RowInfo* __restrict__ info) {
  __shared__ cuda::RowAcc red[32];
  const int64_t j = blockIdx.x, n = r0 + j;
  const float* row = z + j * V;
  const int64_t y = targets[n];
  const bool ok = y >= 0 && y < V;  // the host checked; an id past V gives NaN, never a stray read
  cuda::RowAcc acc = cuda::row_stats<0>(row, V, ok ? y : -1, inv, red);
  if (threadIdx.x == 0) {
    const float nan = __int_as_float(0x7fc00000);
    if (!ok) {
      logp[n] = entropy[n] = nan;
      info[n] = RowInfo{0.0, 0.0, nan};
      return;
    }
    cuda::RowOut r = cuda::finish_row(row[y], acc, inv, inv_d);
    logp[n] = static_cast<float>(r.logp);
    entropy[n] = static_cast<float>(r.entropy);
    info[n] = RowInfo{r.s, r.one_minus_py, r.zmax};
  }
}

// dL/dz of chunk row j over the logits in place: exp((z − zmax)/τ)·c (v ≠ y), ty at y, c =
// −g/(τ s), ty = g(1 − p_y)/τ; zero where g = 0 (masked, clipped, deselected).
__global__ void __launch_bounds__(kThreads) chunk_grads(float* z, const int32_t* __restrict__ targets, int64_t r0, int64_t V, float inv,
                                                        double inv_d, const uint8_t* __restrict__ mask, const float* __restrict__ grad_logp,
                                                        const RowInfo* __restrict__ info, const float* __restrict__ grad_h,
                                                        const float* __restrict__ logp, const float* __restrict__ entropy) {
  const int64_t j = blockIdx.x, n = r0 + j;
  float* row = z + j * V;
  const double g = mask[n] ? static_cast<double>(grad_logp[n]) : 0.0;
  const double gh = grad_h && mask[n] ? static_cast<double>(grad_h[n]) : 0.0;
  const int64_t y = targets[n];
  const RowInfo ri = info[n];
  if ((g == 0 && gh == 0) || !(ri.s > 0)) {
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) row[v] = 0.f;
    return;
  }
  if (gh != 0) {
    // The entropy bonus (as the CPU's row_grads and grpoLossFromLogits' pass B):
    // dL/dz_v = e_v·(c + cd·d_v), ∂H/∂z = −(p/τ)(log p + H).
    const double H = entropy[n], lp = logp[n], py = 1.0 - ri.one_minus_py;
    const float ch = static_cast<float>(-(g + gh * (H - log(ri.s))) * inv_d / ri.s);
    const float cd = static_cast<float>(-gh * inv_d / ri.s);
    const float tyh = static_cast<float>(g * inv_d * ri.one_minus_py - gh * py * inv_d * (lp + H));
    const float zmax = ri.zmax;
    cuda::map_row<0>(row, row, V, [&](int64_t v, float x) {
      const float d = fmaxf((x - zmax) * inv, -88.f);
      return v == y ? tyh : expf(d) * (ch + cd * d);
    });
    return;
  }
  const float c = static_cast<float>(-g * inv_d / ri.s);
  const float ty = static_cast<float>(g * inv_d * ri.one_minus_py);
  const float zmax = ri.zmax;
  cuda::map_row<0>(row, row, V, [&](int64_t v, float x) { return v == y ? ty : expf(fmaxf((x - zmax) * inv, -88.f)) * c; });
}

size_t align_up(size_t x) { return (x + 15) & ~size_t(15); }

}  // namespace

void grpo_loss_from_hidden_cuda(GrpoLossFromHiddenArgs& a, cudaStream_t stream) {
  a.metrics = GrpoMetrics{};
  const int64_t S = a.S, T = a.T, N = S * T, V = a.V, D = a.D;
  if (N <= 0) return;
  const int64_t C = a.chunk < N ? (a.chunk > 0 ? a.chunk : 1) : N;
  const bool grad = a.grad_hidden != nullptr || a.grad_weight != nullptr;
  const float inv = 1.0f / a.temperature;
  const double inv_d = 1.0 / static_cast<double>(a.temperature);
  const int dh = static_cast<int>(a.hidden.dtype), dw = static_cast<int>(a.weight.dtype);
  const int64_t hsz = dtype_size(a.hidden.dtype);
  const size_t o_z = 0, o_info = o_z + align_up(static_cast<size_t>(C * V) * 4), o_g = o_info + align_up(static_cast<size_t>(N) * sizeof(RowInfo)),
               o_gh = o_g + align_up(static_cast<size_t>(N) * 4),
               total = o_gh + (grad && a.opt.entropy_coef != 0 ? align_up(static_cast<size_t>(N) * 4) : 0);
  auto* base = static_cast<unsigned char*>(cuda::workspace(total, stream));
  float* z = reinterpret_cast<float*>(base + o_z);
  RowInfo* info = reinterpret_cast<RowInfo*>(base + o_info);
  float* g = a.grad_logp ? a.grad_logp : reinterpret_cast<float*>(base + o_g);
  const char* hid = static_cast<const char*>(a.hidden.data);

  // Z[c, V] = Hc[c, D] · W[V, D]ᵀ for the rows r0 .. r0+c.
  auto forward = [&](int64_t r0, int64_t c) {
    gemm_any("grpo_loss_from_hidden logits", dh, dw, hid + r0 * D * hsz, D, 1, a.weight.data, 1, D, z, V, c, V, D, false, stream);
  };
  for (int64_t r0 = 0; r0 < N; r0 += C) {  // pass A
    const int64_t c = C < N - r0 ? C : N - r0;
    forward(r0, c);
    cuda::launch("grpo_loss_from_hidden stats", chunk_stats, dim3(static_cast<unsigned>(c)), dim3(kThreads), 0, stream,
                 static_cast<const float*>(z), a.targets, r0, V, inv, inv_d, a.logp, a.entropy, info);
  }
  GrpoLossArgs la = per_token_loss_args(a);
  float* gh = grad && a.opt.entropy_coef != 0 ? reinterpret_cast<float*>(base + o_gh) : nullptr;  // dL/dH (the entropy bonus)
  la.grad_entropy = gh;
  grpo_loss_core_cuda(la, grad ? g : a.grad_logp, &a.metrics, stream);
  if (grad) {
    for (int64_t r0 = 0; r0 < N; r0 += C) {  // pass B
      const int64_t c = C < N - r0 ? C : N - r0;
      forward(r0, c);
      cuda::launch("grpo_loss_from_hidden grads", chunk_grads, dim3(static_cast<unsigned>(c)), dim3(kThreads), 0, stream, z, a.targets, r0, V,
                   inv, inv_d, a.mask, static_cast<const float*>(g), static_cast<const RowInfo*>(info), static_cast<const float*>(gh),
                   static_cast<const float*>(a.logp), static_cast<const float*>(a.entropy));
      // dh[c, D] = dZ[c, V] · W[V, D]
      if (a.grad_hidden)
        gemm_any("grpo_loss_from_hidden dh", 0, dw, z, V, 1, a.weight.data, D, 1, a.grad_hidden + r0 * D, D, c, D, V, false, stream);
      // dW[V, D] += dZ[c, V]ᵀ · Hc[c, D]
      if (a.grad_weight)
        gemm_any("grpo_loss_from_hidden dW", 0, dh, z, 1, V, hid + r0 * D * hsz, D, 1, a.grad_weight, D, V, D, c, true, stream);
    }
  }
  GRPO_CUDA_CHECK(cudaStreamSynchronize(stream));
}

}  // namespace grpo
