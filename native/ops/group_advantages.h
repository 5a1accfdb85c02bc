// groupAdvantages: spec §2. Rewards [S, K] (K reward functions, NaN = "no reward") are summed
// with weights into r[S]; advantages are computed per group. Groups arrive as a dense index
// 0..num_groups-1 per sequence (the TS layer maps group sizes or arbitrary ids to it).
#pragma once
#include <cstdint>

namespace grpo {

enum class AdvEstimator : int { Grpo = 0, Rloo = 1 };
enum class AdvScale : int { Group = 0, Batch = 1, None = 2 };

struct GroupAdvantagesArgs {
  const float* rewards = nullptr;   // [S, K]
  const float* weights = nullptr;   // [K]
  const int32_t* group = nullptr;   // [S], 0 <= group < num_groups; null when group_size > 0
  int64_t group_size = 0;           // > 0: contiguous groups of this size (num_groups = S / group_size)
  int64_t S = 0, K = 1, num_groups = 0;
  AdvEstimator estimator = AdvEstimator::Grpo;
  AdvScale scale = AdvScale::Group;
  double eps = 1e-4;
  bool unbiased = true;  // std divides by (G - 1) (torch.std default) or by G
  float* advantages = nullptr;  // [S] out
  float* reward = nullptr;      // [S] out: weighted NaN-sum (NaN when no function rewarded)
  float* group_mean = nullptr;  // [num_groups] out
  float* group_std = nullptr;   // [num_groups] out
  // scalar outputs
  double zero_std_fraction = 0;  // fraction of groups with std == 0
  int64_t num_no_reward = 0;     // sequences with r = NaN (advantage set to 0)
};

void group_advantages_cpu(GroupAdvantagesArgs& a);

}  // namespace grpo
