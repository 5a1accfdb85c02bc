// The scalar pieces of the sample op (spec §9) that every backend must compute bit for bit the
// same: the float32 exponential used for every probability mass, the Philox word of a vocab
// entry, and the Gumbel key. The full algorithm is written down at the top of
// native/ops/sample.cc; cuda/sample.cu includes this header so the two cannot drift.
//
// No expression here may be contracted into an FMA by the compiler: every multiply-add is an
// explicit fmaf (IEEE fused on the CPU and on CUDA), and every other multiply is not followed
// by an add. Results assume IEEE float32 with denormals (no flush-to-zero).
#pragma once
#include <cmath>
#include <cstdint>

#include "half.h"
#include "philox.h"

namespace grpo {

// E(x): exp(x) in float32, accurate to ~2 ulp, defined exactly so that backends agree bit for
// bit. x < -87 (and NaN) gives 0: e^-87 = 1.6e-38 is below anything that can change a mass that
// always contains the term E(0) = 1. x > 88 is clamped to 88.
//   n = rint(x * 1.44269504f)             (float multiply, round to nearest even)
//   r = fmaf(-n, 0.693359375f, x); r = fmaf(-n, -2.12194440e-4f, r)        (Cody-Waite ln 2)
//   p = 1.9875691500e-4f; p = fmaf(p, r, c) for c in 1.3981999507e-3f, 8.3334519073e-3f,
//       4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f, 1.0f, 1.0f  (Cephes expf)
//   E = p * 2^n   (2^n built from its bits: (n + 127) << 23; n is in [-126, 127])
GRPO_HD float sample_exp(float x) {
  if (!(x >= -87.0f)) return 0.0f;
  if (x > 88.0f) x = 88.0f;
  float n = rintf(x * 1.44269504088896341f);
  float r = fmaf(-n, 0.693359375f, x);
  r = fmaf(-n, -2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = fmaf(p, r, 1.3981999507e-3f);
  p = fmaf(p, r, 8.3334519073e-3f);
  p = fmaf(p, r, 4.1665795894e-2f);
  p = fmaf(p, r, 1.6666665459e-1f);
  p = fmaf(p, r, 5.0000001201e-1f);
  p = fmaf(p, r, 1.0f);
  p = fmaf(p, r, 1.0f);
  return p * bits_to_float(static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23);
}

// The Philox counter of vocab entry v: one Philox 4x32-10 call serves four entries, laid out so
// that 16 SIMD lanes (or 16 CUDA threads) produce 64 consecutive entries with no shuffles:
//   block q = v >> 6, lane i = v & 15, word w = (v >> 4) & 3
//   counter = {16q + i, rowId, step, 0}, key = {seedLo, seedHi}; x_v = output word w.
GRPO_HD uint32_t sample_philox_counter(uint32_t v) { return ((v >> 6) << 4) | (v & 15u); }
GRPO_HD int sample_philox_word(uint32_t v) { return static_cast<int>((v >> 4) & 3u); }

GRPO_HD uint32_t sample_random_bits(uint32_t v, uint32_t row_id, uint32_t step, uint32_t seed_lo, uint32_t seed_hi) {
  Philox4 c{{sample_philox_counter(v), row_id, step, 0u}};
  return philox4x32_10(c, seed_lo, seed_hi).v[sample_philox_word(v)];
}

// Gumbel-max key of an entry with scaled logit u and random bits x, in double:
//   U = (x + 0.5) * 2^-32 (exact), key = (double)u - log(-log(U)).
GRPO_HD double sample_gumbel_key(float u, uint32_t x) {
  double U = philox_uniform_open(x);
  double g = -log(U);
  return static_cast<double>(u) - log(g);
}

}  // namespace grpo
