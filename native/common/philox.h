// Philox 4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the
// counter-based generator used by every sampling kernel on every backend. A draw depends only
// on (key, counter): sampling keys it by the seed and counts by (element, row id, step), so the
// numbers never depend on thread count, batch composition or backend.
#pragma once
#include <cstdint>

#include "half.h"  // GRPO_HD

namespace grpo {

struct Philox4 {
  uint32_t v[4];
};

GRPO_HD void philox_mulhilo(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  *lo = static_cast<uint32_t>(p);
}

// ctr: 128-bit counter, key: 64-bit key. Ten rounds, the standard constants.
GRPO_HD Philox4 philox4x32_10(Philox4 ctr, uint32_t k0, uint32_t k1) {
  const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  const uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(M0, ctr.v[0], &hi0, &lo0);
    philox_mulhilo(M1, ctr.v[2], &hi1, &lo1);
    Philox4 n;
    n.v[0] = hi1 ^ ctr.v[1] ^ k0;
    n.v[1] = lo1;
    n.v[2] = hi0 ^ ctr.v[3] ^ k1;
    n.v[3] = lo0;
    ctr = n;
    k0 += W0;
    k1 += W1;
  }
  return ctr;
}

// A 32-bit draw to a uniform in the open interval (0, 1), exactly representable as a double:
// (x + 0.5) / 2^32. Never 0 or 1, so log(-log(u)) is always finite.
GRPO_HD double philox_uniform_open(uint32_t x) { return (static_cast<double>(x) + 0.5) * 2.3283064365386963e-10; }

}  // namespace grpo
