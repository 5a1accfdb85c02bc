// groupAdvantages on the GPU: spec §2, the same decisions as native/ops/group_advantages.cc
// (no-reward sequences left out of their group's statistics, exact zero std when a group's
// rewards are all equal, rloo as c/(c-1)·(r − mean)). S sequences, K reward functions,
// G groups (dense ids).
//
// One launch of one block. Groups by id are a segmented reduction: the block counts members per
// group, scans the counts into offsets and scatters sequence indices into a CSR list (each
// group's list then sorted by index), so one thread per group sums its members in ascending
// index order in double — the CPU's order, hence the CPU's bits for mean and std. S is the
// sequences of one batch (thousands), small next to any logits tensor.
#include "../native/device/cuda_ops.h"
#include "common.cuh"

namespace grpo {

namespace {

constexpr int kThreads = 512;

struct AdvScratch {
  int* cnt;       // [G] member count, then scatter cursor
  int* off;       // [G + 1] CSR offsets
  int* members;   // [S] sequence indices grouped by id
  double* r;      // [S] weighted NaN-sum
  double* mean;   // [G]
  double* sd;     // [G]
  double* x;      // [S] advantage before the batch passes
  double* gv;     // [G] adv_group_value (OPO baseline, pass@k gap)
  long long* garg;  // [G] adv_group_arg (pass@k best index)
  unsigned long long* counters;  // [4]: num_no_reward, zero-std groups, rewarded, non-zero rewarded (GPG)
};

__global__ void __launch_bounds__(kThreads) group_advantages_kernel(const float* __restrict__ rewards, const float* __restrict__ weights,
                                                                     const int32_t* __restrict__ group, int64_t S, int64_t K, int64_t G,
                                                                     int estimator, int scale, double eps, bool unbiased,
                                                                     const float* __restrict__ lengths, const float* __restrict__ baselines,
                                                                     bool normalize,
                                                                     float* __restrict__ adv_out, float* __restrict__ reward_out,
                                                                     float* __restrict__ mean_out, float* __restrict__ std_out, AdvScratch w) {
  __shared__ int part[kThreads];
  __shared__ double red[32];
  __shared__ double alpha_s;
  const int tid = threadIdx.x, nt = blockDim.x;
  const double nan = __longlong_as_double(0x7ff8000000000000LL);

  for (int64_t j = tid; j < G; j += nt) w.cnt[j] = 0;
  if (tid < 4) w.counters[tid] = 0;
  __syncthreads();

  // 1. weighted NaN-sum per sequence; member counts per group
  for (int64_t i = tid; i < S; i += nt) {
    double acc = 0;
    bool any = false;
    for (int64_t k = 0; k < K; ++k) {
      double x = rewards[i * K + k];
      if (x != x) continue;
      acc += static_cast<double>(weights[k]) * x;
      any = true;
    }
    w.r[i] = any ? acc : nan;
    reward_out[i] = static_cast<float>(w.r[i]);
    if (!any) atomicAdd(&w.counters[0], 1ull);
    else atomicAdd(&w.counters[2], 1ull);
    if (any && acc != 0.0) atomicAdd(&w.counters[3], 1ull);
    int32_t g = group[i];
    if (any && g >= 0 && g < G) atomicAdd(&w.cnt[g], 1);
  }
  __syncthreads();

  // 2. exclusive scan of the counts: each thread a contiguous chunk, then the chunk totals
  const int64_t chunk = (G + nt - 1) / nt;
  const int64_t c0 = tid * chunk, c1 = c0 + chunk < G ? c0 + chunk : G;
  int s = 0;
  for (int64_t j = c0; j < c1; ++j) s += w.cnt[j];
  part[tid] = s;
  __syncthreads();
  if (tid == 0) {
    int run = 0;
    for (int t = 0; t < nt; ++t) {
      int x = part[t];
      part[t] = run;
      run += x;
    }
    w.off[G] = run;
  }
  __syncthreads();
  int run = part[tid];
  for (int64_t j = c0; j < c1; ++j) {
    w.off[j] = run;
    run += w.cnt[j];
    w.cnt[j] = 0;  // now the scatter cursor
  }
  __syncthreads();

  // 3. scatter sequence indices into their group's segment
  for (int64_t i = tid; i < S; i += nt) {
    int32_t g = group[i];
    double ri = w.r[i];
    if (ri == ri && g >= 0 && g < G) w.members[w.off[g] + atomicAdd(&w.cnt[g], 1)] = static_cast<int>(i);
  }
  __syncthreads();

  // 4. per group (one thread): sort its members by index, then the CPU's two passes in order
  for (int64_t j = tid; j < G; j += nt) {
    int* m = w.members + w.off[j];
    const int c = w.off[j + 1] - w.off[j];
    for (int a = 1; a < c; ++a) {  // insertion sort: groups are small
      int x = m[a], b = a - 1;
      while (b >= 0 && m[b] > x) {
        m[b + 1] = m[b];
        --b;
      }
      m[b + 1] = x;
    }
    double sum = 0, lo = 0, hi = 0;
    AdvGroupExtra ex;
    for (int a = 0; a < c; ++a) {
      double x = w.r[m[a]];
      if (a == 0) lo = hi = x;
      lo = fmin(lo, x);
      hi = fmax(hi, x);
      sum += x;
      if (estimator == static_cast<int>(AdvEstimator::Opo)) {
        const double len = static_cast<double>(lengths[m[a]]);
        ex.len_sum += len;
        ex.len_r_sum += len * x;
      }
    }
    double mean = c == 0 ? nan : (lo == hi ? lo : sum / static_cast<double>(c));
    double sq = 0;
    for (int a = 0; a < c; ++a) {
      double d = w.r[m[a]] - mean;
      sq += d * d;
      if (estimator == static_cast<int>(AdvEstimator::GrpoPassk)) adv_best_two(ex, hi, w.r[m[a]], m[a]);
    }
    w.gv[j] = adv_group_value(static_cast<AdvEstimator>(estimator), c, mean, hi, ex);
    w.garg[j] = adv_group_arg(static_cast<AdvEstimator>(estimator), c, ex);
    double sd = c == 0 ? nan : (lo == hi || c <= 1 ? 0.0 : sqrt(sq / static_cast<double>(unbiased ? c - 1 : c)));
    if (sd == 0.0) atomicAdd(&w.counters[1], 1ull);
    w.mean[j] = mean;
    w.sd[j] = sd;
    mean_out[j] = static_cast<float>(mean);
    std_out[j] = static_cast<float>(sd);
  }
  __syncthreads();

  // 5. batch std over every rewarded sequence (scale 'batch')
  double batch_sd = 0;
  if (scale == static_cast<int>(AdvScale::Batch)) {
    double bs = 0, bc = 0;
    for (int64_t i = tid; i < S; i += nt) {
      double x = w.r[i];
      if (x == x) {
        bs += x;
        bc += 1;
      }
    }
    bs = cuda::block_sum(bs, red);
    bc = cuda::block_sum(bc, red);
    if (bc > 1) {
      const double bm = bs / bc;
      double sq = 0;
      for (int64_t i = tid; i < S; i += nt) {
        double x = w.r[i];
        if (x == x) sq += (x - bm) * (x - bm);
      }
      sq = cuda::block_sum(sq, red);
      batch_sd = sqrt(sq / (unbiased ? bc - 1 : bc));
    }
  }

  // 6. advantages (the CPU's adv_sequence)
  if (tid == 0) alpha_s = adv_gpg_alpha(static_cast<int64_t>(w.counters[2]), static_cast<int64_t>(w.counters[3]));
  __syncthreads();
  const AdvEstimator est = static_cast<AdvEstimator>(estimator);
  const bool whiten = est == AdvEstimator::ReinforcePP || est == AdvEstimator::ReinforcePPBaseline;
  for (int64_t i = tid; i < S; i += nt) {
    double ri = w.r[i];
    int32_t g = group[i];
    if (ri != ri) {
      adv_out[i] = 0.0f;
      continue;
    }
    if (g < 0 || g >= G) {  // an id the caller promised in range was not: no statistics to use
      adv_out[i] = static_cast<float>(nan);
      w.x[i] = nan;
      continue;
    }
    const int c = w.off[g + 1] - w.off[g];
    const double bl = baselines != nullptr ? static_cast<double>(baselines[i]) : 0.0;
    const double a = adv_sequence(est, static_cast<AdvScale>(scale), ri, i, c, w.mean[g], w.sd[g], batch_sd, eps, w.gv[g], w.garg[g], alpha_s, bl);
    w.x[i] = a;
    adv_out[i] = static_cast<float>(a);
  }
  if (!whiten && !normalize) return;
  __syncthreads();

  // 7. batch passes: one thread, in index order, so the sums are the CPU's bits (S is one
  // batch's sequences; a tree reduction would round differently)
  if (tid == 0) {
    if (whiten) {
      AdvWhiten wh;
      for (int64_t i = 0; i < S; ++i)
        if (w.r[i] == w.r[i] && w.x[i] == w.x[i]) wh.add_mean(w.x[i], lengths != nullptr ? static_cast<double>(lengths[i]) : 1.0);
      wh.finish_mean();
      for (int64_t i = 0; i < S; ++i)
        if (w.r[i] == w.r[i] && w.x[i] == w.x[i]) wh.add_var(w.x[i], lengths != nullptr ? static_cast<double>(lengths[i]) : 1.0);
      wh.finish_var();
      for (int64_t i = 0; i < S; ++i)
        if (w.r[i] == w.r[i] && w.x[i] == w.x[i]) w.x[i] = wh.apply(w.x[i]);
    }
    if (normalize) {
      AdvNormalize nz;
      for (int64_t i = 0; i < S; ++i)
        if (w.r[i] == w.r[i] && w.x[i] == w.x[i]) nz.add_mean(w.x[i]);
      nz.finish_mean();
      for (int64_t i = 0; i < S; ++i)
        if (w.r[i] == w.r[i] && w.x[i] == w.x[i]) nz.add_var(w.x[i]);
      nz.finish_var(unbiased);
      for (int64_t i = 0; i < S; ++i)
        if (w.r[i] == w.r[i] && w.x[i] == w.x[i]) w.x[i] = nz.apply(w.x[i], eps);
    }
  }
  __syncthreads();
  for (int64_t i = tid; i < S; i += nt) {
    double ri = w.r[i];
    if (ri == ri && w.x[i] == w.x[i]) adv_out[i] = static_cast<float>(w.x[i]);
  }
}

size_t align_up(size_t x) { return (x + 15) & ~size_t(15); }

}  // namespace

void group_advantages_cuda(GroupAdvantagesArgs& a, cudaStream_t stream) {
  a.zero_std_fraction = 0;
  a.num_no_reward = 0;
  if (a.S == 0 && a.num_groups == 0) return;
  const size_t S = static_cast<size_t>(a.S), G = static_cast<size_t>(a.num_groups);
  size_t o_cnt = 0, o_off = o_cnt + align_up(G * 4), o_mem = o_off + align_up((G + 1) * 4), o_r = o_mem + align_up(S * 4),
         o_mean = o_r + align_up(S * 8), o_sd = o_mean + align_up(G * 8), o_x = o_sd + align_up(G * 8), o_gv = o_x + align_up(S * 8),
         o_garg = o_gv + align_up(G * 8), o_ctr = o_garg + align_up(G * 8), total = o_ctr + 32;
  auto* base = static_cast<unsigned char*>(cuda::workspace(total, stream));
  AdvScratch w;
  w.cnt = reinterpret_cast<int*>(base + o_cnt);
  w.off = reinterpret_cast<int*>(base + o_off);
  w.members = reinterpret_cast<int*>(base + o_mem);
  w.r = reinterpret_cast<double*>(base + o_r);
  w.mean = reinterpret_cast<double*>(base + o_mean);
  w.sd = reinterpret_cast<double*>(base + o_sd);
  w.x = reinterpret_cast<double*>(base + o_x);
  w.gv = reinterpret_cast<double*>(base + o_gv);
  w.garg = reinterpret_cast<long long*>(base + o_garg);
  w.counters = reinterpret_cast<unsigned long long*>(base + o_ctr);
  cuda::launch("group_advantages_kernel", group_advantages_kernel, dim3(1), dim3(kThreads), 0, stream, a.rewards, a.weights, a.group, a.S,
               a.K, a.num_groups, static_cast<int>(a.estimator), static_cast<int>(a.scale), a.eps, a.unbiased, a.lengths, a.baselines, a.normalize, a.advantages, a.reward,
               a.group_mean, a.group_std, w);
  unsigned long long counters[2];
  GRPO_CUDA_CHECK(cudaMemcpyAsync(counters, w.counters, sizeof(counters), cudaMemcpyDeviceToHost, stream));
  GRPO_CUDA_CHECK(cudaStreamSynchronize(stream));
  a.num_no_reward = static_cast<int64_t>(counters[0]);
  a.zero_std_fraction = G > 0 ? static_cast<double>(counters[1]) / static_cast<double>(G) : 0.0;
}

}  // namespace grpo
