#include "cpu.h"

#include <cstdlib>
#include <cstring>

namespace grpo {

static CpuIsa detect() {
  __builtin_cpu_init();
  CpuIsa best = CpuIsa::Generic;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = CpuIsa::Avx2;
  if (best == CpuIsa::Avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    best = CpuIsa::Avx512;
  if (const char* f = std::getenv("GRPO_CPU_ISA")) {
    CpuIsa want = best;
    if (!std::strcmp(f, "generic")) want = CpuIsa::Generic;
    if (!std::strcmp(f, "avx2")) want = CpuIsa::Avx2;
    if (!std::strcmp(f, "avx512")) want = CpuIsa::Avx512;
    if (static_cast<int>(want) < static_cast<int>(best)) best = want;  // never above what the CPU has
  }
  return best;
}

CpuIsa cpu_isa_level() {
  static const CpuIsa level = detect();
  return level;
}

const char* cpu_isa() {
  switch (cpu_isa_level()) {
    case CpuIsa::Avx512: return "avx512";
    case CpuIsa::Avx2: return "avx2";
    default: return "generic";
  }
}

}  // namespace grpo
