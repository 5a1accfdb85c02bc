// sample: spec §9. Per row r of logits [R, V]: temperature, top-k, top-p, min-p filters, then
// one draw from the renormalised kept set, with Philox randomness keyed by (seed, row id, step).
#pragma once
#include <cstdint>

#include "../tensor.h"

namespace grpo {

struct SampleArgs {
  TensorView logits;  // [R, V]
  int64_t R = 0, V = 0;
  const float* temperature = nullptr;  // [R], >= 0 (0 = greedy)
  const int32_t* top_k = nullptr;      // [R], 0 = off
  const float* top_p = nullptr;        // [R], in (0, 1]; 1 = off
  const float* min_p = nullptr;        // [R], in [0, 1]; 0 = off
  uint32_t seed_lo = 0, seed_hi = 0;
  uint32_t step = 0;
  const uint32_t* row_ids = nullptr;  // [R] or null: row index
  int32_t* tokens = nullptr;          // [R] out
  float* logp = nullptr;              // [R] out: log softmax(z/tau)[token] over the whole vocab
  float* trunc_logp = nullptr;        // [R] out, optional: log-prob under the kept distribution
};

void sample_cpu(const SampleArgs& a);

}  // namespace grpo
