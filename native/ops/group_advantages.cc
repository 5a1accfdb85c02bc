// groupAdvantages CPU kernel: spec §2. S sequences, K reward functions, rewards[i*K + k].
// O(S·K); the fixed-size path runs groups in parallel (and, for K = 1 and small groups, several
// groups in lockstep in vector lanes). Everything is computed in double.
//
// Decisions where the spec is terse:
// - "no reward": a sequence whose K rewards are all NaN gets r = NaN and advantage 0, is counted
//   in num_no_reward, and is LEFT OUT of its group's mean/std and of the batch std (it carries
//   no information; TRL's nansum would instead count it as reward 0).
// - A group's std over c rewarded members: unbiased divides by c - 1, population by c; c <= 1
//   gives 0 (spec: G = 1 gives 0). A group with no rewarded member has mean = std = NaN and is
//   not counted as zero-std (its sequences all have advantage 0 anyway).
// - A group whose rewarded members are all equal has std exactly 0 and mean exactly that value
//   (checked by min == max, so rounding in the mean cannot make a tiny non-zero std).
// - The estimators beyond grpo/rloo (verl's reinforce_plus_plus[_baseline], gpg, grpo_passk, opo,
//   remax) and TRL's normalize_advantages: formulas in group_advantages.h, shared with CUDA.
// - rloo: A = r_i - mean of the group's other rewarded members; with fewer than 2 rewarded
//   members there is no baseline and A = 0. The scale (group / batch std + eps) applies to rloo
//   too; the TS layer defaults it to 'none' for rloo (spec's plain RLOO).
#include "group_advantages.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "../common/threadpool.h"
#include "../kernels/elementwise.h"

namespace grpo {

namespace {
struct GroupStat {
  int64_t count = 0;
  double sum = 0, sq = 0, lo = 0, hi = 0;
};
double std_from(double sq, int64_t c, bool unbiased) {
  if (c <= 1) return 0.0;
  return std::sqrt(sq / static_cast<double>(unbiased ? c - 1 : c));
}
}  // namespace

namespace {
// Contiguous groups of a fixed size (groupSize): one pass per group over its members, which stay
// in L1 between the mean, the squared deviations and the advantages; no per-sequence scratch of
// S entries. The same statements, in the same order per group, as the general path below, so
// the two give the same bits. Groups are independent: spread over the thread pool for large S
// (each group's bits do not depend on which thread ran it). Every field the loops read is a
// local: a store through a float* must not make the compiler reload the args struct.
// ±Infinity among the rewards is recorded (first index) for the caller's error, not trapped.
template <bool K1>
void group_advantages_fixed_t(GroupAdvantagesArgs& a) {
  const int64_t S = a.S, Gs = a.group_size, NG = a.num_groups, K = a.K;
  const float* const rw = a.rewards;
  const float* const wt = a.weights;
  float* const adv_out = a.advantages;
  float* const r_out = a.reward;
  float* const mean_out = a.group_mean;
  float* const std_out = a.group_std;
  const bool rloo_est = a.estimator == AdvEstimator::Rloo, unbiased = a.unbiased;
  const AdvScale scale = a.scale;
  const double eps = a.eps, w0 = static_cast<double>(wt[0]);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // weighted NaN-sum of sequence i (K1: 0 + w·x, as the K-loop gives it); bad: ±Inf seen
  auto reward_of = [&](int64_t i, bool& bad) -> double {
    if (K1) {
      const double x = rw[i];
      bad |= x - x != 0.0 && x == x;
      return x != x ? nan : 0.0 + w0 * x;
    }
    double acc = 0;
    bool any = false;
    for (int64_t k = 0; k < K; ++k) {
      const double x = rw[i * K + k];
      bad |= x - x != 0.0 && x == x;
      if (x != x) continue;
      acc += static_cast<double>(wt[k]) * x;
      any = true;
    }
    return any ? acc : nan;
  };
  double batch_sd = 0;
  if (scale == AdvScale::Batch) {  // the batch std needs every reward first
    double bs = 0;
    int64_t bc = 0;
    bool bad = false;
    for (int64_t i = 0; i < S; ++i) {
      const double x = reward_of(i, bad);
      if (x == x) { bs += x; ++bc; }
    }
    if (bc > 1) {
      const double bm = bs / static_cast<double>(bc);
      double sq = 0;
      for (int64_t i = 0; i < S; ++i) {
        const double x = reward_of(i, bad);
        if (x == x) sq += (x - bm) * (x - bm);
      }
      batch_sd = std_from(sq, bc, unbiased);
    }
  }
  if (K1 && Gs <= kGroupAdvLanesMaxG) {
    // groups in lockstep, one per vector lane (kernels/elementwise_impl.h group_adv): the same
    // statements per group, so the same bits as the loop below
    const ElementwiseKernels& k = elementwise_kernels();
    const GroupAdvLanesArgs la{rw, w0, Gs, rloo_est, unbiased, static_cast<int>(scale), eps, batch_sd, adv_out, r_out, mean_out, std_out};
    std::atomic<int64_t> zs{0}, nr{0};
    std::atomic<bool> inf{false};
    parallel_for(NG, [&](int64_t j0, int64_t j1, int) {
      const GroupAdvLanesCounts c = k.group_adv(la, j0, j1);
      zs.fetch_add(c.zero_std, std::memory_order_relaxed);
      nr.fetch_add(c.no_reward, std::memory_order_relaxed);
      if (c.inf) inf.store(true, std::memory_order_relaxed);
    }, std::max<int64_t>(8, (int64_t(1) << 16) / Gs));
    a.num_no_reward = nr.load();
    a.first_inf = -1;
    if (inf.load())  // an error: find the first ±Inf for the message
      for (int64_t e = 0; e < S && a.first_inf < 0; ++e)
        if (std::isinf(rw[e])) a.first_inf = e;
    a.zero_std_fraction = NG > 0 ? static_cast<double>(zs.load()) / static_cast<double>(NG) : 0.0;
    return;
  }
  std::atomic<int64_t> zero_std{0}, no_reward{0}, first_inf{-1};
  parallel_for(NG, [&](int64_t j0, int64_t j1, int) {
    thread_local std::vector<double> buf;
    if (static_cast<int64_t>(buf.size()) < Gs) buf.resize(static_cast<size_t>(Gs));
    double* const r = buf.data();
    int64_t zs = 0, nr = 0;
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t i0 = j * Gs;
      GroupStat g;
      bool bad = false;
      for (int64_t u = 0; u < Gs; ++u) {
        const double x = reward_of(i0 + u, bad);
        r[u] = x;
        r_out[i0 + u] = static_cast<float>(x);
        if (x != x) { ++nr; continue; }
        if (g.count == 0) g.lo = g.hi = x;
        g.lo = x < g.lo ? x : g.lo;  // no NaN here, and no −0 (0 + w·x is +0): fmin's value
        g.hi = x > g.hi ? x : g.hi;
        g.sum += x;
        ++g.count;
      }
      if (bad) {  // the first ±Inf of this group; the smallest over all groups wins
        int64_t at = -1;
        for (int64_t e = i0 * K; e < (i0 + Gs) * K && at < 0; ++e)
          if (std::isinf(rw[e])) at = e;
        int64_t cur = first_inf.load();
        while ((cur < 0 || at < cur) && !first_inf.compare_exchange_weak(cur, at)) {}
      }
      const double mean = g.count == 0 ? nan : (g.lo == g.hi ? g.lo : g.sum / static_cast<double>(g.count));
      for (int64_t u = 0; u < Gs; ++u) {
        if (r[u] != r[u]) continue;
        const double d = r[u] - mean;
        g.sq += d * d;
      }
      const double sd = g.count == 0 ? nan : (g.lo == g.hi ? 0.0 : std_from(g.sq, g.count, unbiased));
      if (sd == 0.0) ++zs;
      mean_out[j] = static_cast<float>(mean);
      std_out[j] = static_cast<float>(sd);
      const double rloo = g.count < 2 ? 0.0 : static_cast<double>(g.count) / static_cast<double>(g.count - 1);
      const double div = scale == AdvScale::Group ? sd + eps : batch_sd + eps;
      for (int64_t u = 0; u < Gs; ++u) {
        if (r[u] != r[u]) {
          adv_out[i0 + u] = 0.0f;
          continue;
        }
        double adv = r[u] - mean;
        if (rloo_est) adv = g.count < 2 ? 0.0 : rloo * adv;
        if (scale != AdvScale::None) adv /= div;
        adv_out[i0 + u] = static_cast<float>(adv);
      }
    }
    zero_std.fetch_add(zs, std::memory_order_relaxed);
    no_reward.fetch_add(nr, std::memory_order_relaxed);
  }, std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(Gs * K, 1)));
  a.num_no_reward = no_reward.load();
  a.first_inf = first_inf.load();
  a.zero_std_fraction = NG > 0 ? static_cast<double>(zero_std.load()) / static_cast<double>(NG) : 0.0;
}
void group_advantages_fixed(GroupAdvantagesArgs& a) {
  if (a.K == 1) group_advantages_fixed_t<true>(a);
  else group_advantages_fixed_t<false>(a);
}
}  // namespace

void group_advantages_cpu(GroupAdvantagesArgs& a) {
  const AdvEstimator est = a.estimator;
  // the fixed-size fast path covers the group-local estimators; the others need batch passes,
  // per-group extras (lengths, best two) or per-sequence baselines: the general path below
  if (a.group_size > 0 && (est == AdvEstimator::Grpo || est == AdvEstimator::Rloo) && !a.normalize) return group_advantages_fixed(a);
  const int64_t S = a.S, K = a.K, G = a.num_groups, Gs = a.group_size;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  a.zero_std_fraction = 0;
  a.num_no_reward = 0;
  // dense group of sequence i: the caller's index, or i / groupSize for contiguous groups
  // (spelled out once: a 64-bit division per use costs more than the rest of the work)
  std::vector<int32_t> contiguous;
  if (a.group == nullptr) {
    contiguous.resize(static_cast<size_t>(S));
    for (int64_t i = 0; i < S; ++i) contiguous[i] = static_cast<int32_t>(i / Gs);
  }
  const int32_t* const gidx = a.group != nullptr ? a.group : contiguous.data();
  auto gid = [gidx](int64_t i) -> int64_t { return gidx[i]; };
  a.first_inf = -1;

  // Weighted NaN-sum of the reward functions.
  std::vector<double> r(static_cast<size_t>(S));
  for (int64_t i = 0; i < S; ++i) {
    double acc = 0;
    bool any = false;
    for (int64_t k = 0; k < K; ++k) {
      double x = a.rewards[i * K + k];
      if (std::isinf(x) && a.first_inf < 0) a.first_inf = i * K + k;
      if (std::isnan(x)) continue;
      acc += static_cast<double>(a.weights[k]) * x;
      any = true;
    }
    r[i] = any ? acc : nan;
    if (!any) ++a.num_no_reward;
    a.reward[i] = static_cast<float>(r[i]);
  }

  // Group means (first pass), then squared deviations (second pass: no cancellation). OPO's
  // length-weighted sums and pass@k's best two ride along, in ascending sequence order.
  std::vector<GroupStat> gs(static_cast<size_t>(G));
  std::vector<AdvGroupExtra> ex(static_cast<size_t>(G));
  int64_t rewarded = 0, nonzero = 0;  // GPG's alpha
  for (int64_t i = 0; i < S; ++i) {
    if (std::isnan(r[i])) continue;
    GroupStat& g = gs[gid(i)];
    if (g.count == 0) g.lo = g.hi = r[i];
    g.lo = std::fmin(g.lo, r[i]);
    g.hi = std::fmax(g.hi, r[i]);
    g.sum += r[i];
    ++g.count;
    ++rewarded;
    if (r[i] != 0.0) ++nonzero;
    if (est == AdvEstimator::Opo) {
      const double len = static_cast<double>(a.lengths[i]);
      ex[gid(i)].len_sum += len;
      ex[gid(i)].len_r_sum += len * r[i];
    }
  }
  std::vector<double> mean(static_cast<size_t>(G)), sd(static_cast<size_t>(G));
  for (int64_t j = 0; j < G; ++j) {
    const GroupStat& g = gs[j];
    mean[j] = g.count == 0 ? nan : (g.lo == g.hi ? g.lo : g.sum / static_cast<double>(g.count));
  }
  double batch_sum = 0;
  int64_t batch_count = 0;
  for (int64_t i = 0; i < S; ++i) {
    if (std::isnan(r[i])) continue;
    const int64_t j = gid(i);
    double d = r[i] - mean[j];
    gs[j].sq += d * d;
    batch_sum += r[i];
    ++batch_count;
    if (est == AdvEstimator::GrpoPassk) adv_best_two(ex[j], gs[j].hi, r[i], i);
  }
  int64_t zero_std = 0;
  for (int64_t j = 0; j < G; ++j) {
    const GroupStat& g = gs[j];
    sd[j] = g.count == 0 ? nan : (g.lo == g.hi ? 0.0 : std_from(g.sq, g.count, a.unbiased));
    if (sd[j] == 0.0) ++zero_std;
    a.group_mean[j] = static_cast<float>(mean[j]);
    a.group_std[j] = static_cast<float>(sd[j]);
  }
  a.zero_std_fraction = G > 0 ? static_cast<double>(zero_std) / static_cast<double>(G) : 0.0;

  // Batch std over every rewarded sequence (scale 'batch').
  double batch_sd = 0;
  if (a.scale == AdvScale::Batch && batch_count > 1) {
    const double bm = batch_sum / static_cast<double>(batch_count);
    double sq = 0;
    for (int64_t i = 0; i < S; ++i)
      if (!std::isnan(r[i])) sq += (r[i] - bm) * (r[i] - bm);
    batch_sd = std_from(sq, batch_count, a.unbiased);
  }

  // Per-sequence advantage (the formula is shared with the CUDA kernel), written over r.
  const double alpha = adv_gpg_alpha(rewarded, nonzero);
  std::vector<double> x(static_cast<size_t>(S), 0.0);
  for (int64_t i = 0; i < S; ++i) {
    if (std::isnan(r[i])) continue;
    const int64_t j = gid(i);
    const double bl = a.baselines != nullptr ? static_cast<double>(a.baselines[i]) : 0.0;
    const double gv = adv_group_value(est, gs[j].count, mean[j], gs[j].hi, ex[j]);
    x[i] = adv_sequence(est, a.scale, r[i], i, gs[j].count, mean[j], sd[j], batch_sd, a.eps, gv, adv_group_arg(est, gs[j].count, ex[j]), alpha, bl);
  }

  // Batch passes, sequential in index order (the CUDA kernel runs the same loops on one thread);
  // a NaN advantage (eps = 0 on a zero-std group) is left out of them.
  if (est == AdvEstimator::ReinforcePP || est == AdvEstimator::ReinforcePPBaseline) {
    AdvWhiten w;
    for (int64_t i = 0; i < S; ++i)
      if (!std::isnan(r[i]) && !std::isnan(x[i])) w.add_mean(x[i], a.lengths != nullptr ? static_cast<double>(a.lengths[i]) : 1.0);
    w.finish_mean();
    for (int64_t i = 0; i < S; ++i)
      if (!std::isnan(r[i]) && !std::isnan(x[i])) w.add_var(x[i], a.lengths != nullptr ? static_cast<double>(a.lengths[i]) : 1.0);
    w.finish_var();
    for (int64_t i = 0; i < S; ++i)
      if (!std::isnan(r[i]) && !std::isnan(x[i])) x[i] = w.apply(x[i]);
  }
  if (a.normalize) {
    AdvNormalize nz;
    for (int64_t i = 0; i < S; ++i)
      if (!std::isnan(r[i]) && !std::isnan(x[i])) nz.add_mean(x[i]);
    nz.finish_mean();
    for (int64_t i = 0; i < S; ++i)
      if (!std::isnan(r[i]) && !std::isnan(x[i])) nz.add_var(x[i]);
    nz.finish_var(a.unbiased);
    for (int64_t i = 0; i < S; ++i)
      if (!std::isnan(r[i]) && !std::isnan(x[i])) x[i] = nz.apply(x[i], a.eps);
  }
  for (int64_t i = 0; i < S; ++i) a.advantages[i] = std::isnan(r[i]) ? 0.0f : static_cast<float>(x[i]);
}

}  // namespace grpo
