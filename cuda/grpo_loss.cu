// grpoLoss on the GPU: spec §4-§6 from per-token log-probs, and the loss core of the fused op
// (cuda/grpo_loss_from_logits.cu). S sequences × T tokens, N = S·T, row n = i·T + t.
//
// One thread per sequence runs native/ops/grpo_loss.cc's per-sequence pass statement for
// statement, in double and in token order (GSPO's sequence ratio is its first loop over the
// sequence); the per-sequence sums are added serially in sequence order. Given the same inputs
// the loss, the metrics and dL/dℓ are the CPU's bits. Four small launches: counts n_i, the batch
// count, the loss, the totals. The top-entropy threshold (torch.quantile over the masked
// entropies) is computed on the host from the N entropies with the CPU's algorithm.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../native/device/cuda_ops.h"
#include "common.cuh"
#include "../native/ops/grpo_loss_core.h"
#include "grpo_loss_core.h"

namespace grpo {

namespace {

struct CoreArgs {
  const float* logp;
  const float* old_logp;
  const float* ref_logp;
  const float* advantages;
  const uint8_t* mask;
  const float* entropy;
  const float* rollout_logp;
  int64_t S, T;
  GrpoOptions o;
  bool select;
  double threshold;
  float* grad_logp;
  float* per_token_loss;
  double* n_seq;  // [S]
  double* n_batch;  // [1]; n_batch[1]: the sequences with a masked token
  const uint8_t* cov_sel;  // [N] or null: clip_cov / kl_cov selection
  float* grad_entropy;     // [N] or null
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
  double nb = 0, na = 0;
  for (int64_t i = 0; i < c.S; ++i) {  // sequence order, as the CPU
    nb += c.n_seq[i];
    na += c.n_seq[i] > 0;
  }
  c.n_batch[0] = nb;
  c.n_batch[1] = na;
}

// grpo_loss_cpu's pass 3, one thread per sequence: the same statements (native/ops/grpo_loss_core.h).
__global__ void core_loss(CoreArgs c) {
  const int64_t T = c.T;
  GrpoOptions o = c.o;
  o.n_seq_active = c.n_batch[1];
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < c.S; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = i * T;
    SeqInputs q;
    q.mask = c.mask + base;
    q.logp = c.logp + base;
    q.old_logp = c.old_logp ? c.old_logp + base : nullptr;
    q.ref_logp = c.ref_logp ? c.ref_logp + base : nullptr;
    q.entropy = c.entropy ? c.entropy + base : nullptr;
    q.rollout_logp = c.rollout_logp ? c.rollout_logp + base : nullptr;
    q.grad_logp = c.grad_logp ? c.grad_logp + base : nullptr;
    q.per_token_loss = c.per_token_loss ? c.per_token_loss + base : nullptr;
    q.T = T;
    q.advantage = c.advantages[i];
    q.n_i = c.n_seq[i];
    q.n_batch = *c.n_batch;
    q.S = c.S;
    q.select = c.select;
    q.threshold = c.threshold;
    q.cov_sel = c.cov_sel ? c.cov_sel + base : nullptr;
    q.grad_entropy = c.grad_entropy ? c.grad_entropy + base : nullptr;
    c.sums[i] = grpo_sequence_pass(q, o);
  }
}

__global__ void core_totals(CoreArgs c) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  grpo_sum_metrics(c.sums, c.S, *c.n_batch, c.metrics);
}

size_t align_up(size_t x) { return (x + 15) & ~size_t(15); }

}  // namespace

void grpo_loss_core_cuda(const GrpoLossArgs& a, float* grad_logp, GrpoMetrics* metrics, cudaStream_t stream) {
  const int64_t S = a.S, T = a.T, N = S * T;
  const size_t o_nseq = 0, o_nb = o_nseq + align_up(S * 8), o_sums = o_nb + 16, o_met = o_sums + align_up(S * sizeof(SeqSums)),
               o_sel = o_met + align_up(sizeof(GrpoMetrics)),
               total = o_sel + ((a.opt.policy_loss == PolicyLoss::ClipCov || a.opt.policy_loss == PolicyLoss::KlCov) ? align_up(N) : 0);
  auto* base = static_cast<unsigned char*>(cuda::workspace(total, stream, 1));
  CoreArgs c;
  c.logp = a.logp;
  c.old_logp = a.old_logp;
  c.ref_logp = a.ref_logp;
  c.advantages = a.advantages;
  c.mask = a.mask;
  c.entropy = a.entropy;
  c.rollout_logp = a.rollout_logp;
  c.S = S;
  c.T = T;
  c.o = a.opt;
  c.grad_logp = grad_logp;
  c.per_token_loss = a.per_token_loss;
  c.n_seq = reinterpret_cast<double*>(base + o_nseq);
  c.n_batch = reinterpret_cast<double*>(base + o_nb);
  c.sums = reinterpret_cast<SeqSums*>(base + o_sums);
  c.metrics = reinterpret_cast<GrpoMetrics*>(base + o_met);
  c.select = false;
  c.threshold = 0;
  c.cov_sel = nullptr;
  c.grad_entropy = a.grad_entropy;

  const unsigned seq_threads = 64, seq_blocks = cuda::blocks_for(S, seq_threads, 1024);
  cuda::launch("grpo loss core: counts", core_counts, dim3(seq_blocks), dim3(seq_threads), 0, stream, c);
  cuda::launch("grpo loss core: batch", core_batch, dim3(1), dim3(32), 0, stream, c);
  if (a.opt.top_entropy_quantile < 1.0 && a.entropy) {
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
  std::vector<uint8_t> sel;
  if (a.opt.policy_loss == PolicyLoss::ClipCov || a.opt.policy_loss == PolicyLoss::KlCov) {
    // verl clip_cov / kl_cov: the batch-wide selection on the host with the CPU's code (O(N) floats).
    std::vector<float> lp(static_cast<size_t>(N)), old(a.old_logp ? static_cast<size_t>(N) : 0), adv(static_cast<size_t>(S));
    std::vector<uint8_t> m(static_cast<size_t>(N));
    GRPO_CUDA_CHECK(cudaMemcpyAsync(lp.data(), a.logp, N * 4, cudaMemcpyDeviceToHost, stream));
    if (a.old_logp) GRPO_CUDA_CHECK(cudaMemcpyAsync(old.data(), a.old_logp, N * 4, cudaMemcpyDeviceToHost, stream));
    GRPO_CUDA_CHECK(cudaMemcpyAsync(adv.data(), a.advantages, S * 4, cudaMemcpyDeviceToHost, stream));
    GRPO_CUDA_CHECK(cudaMemcpyAsync(m.data(), a.mask, N, cudaMemcpyDeviceToHost, stream));
    GRPO_CUDA_CHECK(cudaStreamSynchronize(stream));
    cov_select(lp.data(), a.old_logp ? old.data() : nullptr, adv.data(), m.data(), S, T, a.opt, sel);
    auto* dsel = static_cast<uint8_t*>(static_cast<void*>(base + o_sel));
    GRPO_CUDA_CHECK(cudaMemcpyAsync(dsel, sel.data(), N, cudaMemcpyHostToDevice, stream));
    GRPO_CUDA_CHECK(cudaStreamSynchronize(stream));  // sel is freed when this function returns
    c.cov_sel = dsel;
  }
  cuda::launch("grpo loss core: loss", core_loss, dim3(seq_blocks), dim3(seq_threads), 0, stream, c);
  cuda::launch("grpo loss core: totals", core_totals, dim3(1), dim3(32), 0, stream, c);
  GRPO_CUDA_CHECK(cudaMemcpyAsync(metrics, c.metrics, sizeof(GrpoMetrics), cudaMemcpyDeviceToHost, stream));
}

void grpo_loss_counts_cuda(const uint8_t* mask, int64_t S, int64_t T, double* n_seq, double* n_batch, cudaStream_t stream) {
  CoreArgs c{};
  c.mask = mask;
  c.S = S;
  c.T = T;
  c.n_seq = n_seq;
  c.n_batch = n_batch;
  const unsigned seq_threads = 64, seq_blocks = cuda::blocks_for(S, seq_threads, 1024);
  cuda::launch("grpo loss counts", core_counts, dim3(seq_blocks), dim3(seq_threads), 0, stream, c);
  cuda::launch("grpo loss batch count", core_batch, dim3(1), dim3(32), 0, stream, c);
}

void grpo_loss_cuda(GrpoLossArgs& a, cudaStream_t stream) {
  a.metrics = GrpoMetrics{};
  if (a.S <= 0 || a.T <= 0) return;
  grpo_loss_core_cuda(a, a.grad_logp, &a.metrics, stream);
  GRPO_CUDA_CHECK(cudaStreamSynchronize(stream));
}

}  // namespace grpo
