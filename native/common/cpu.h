// Run-time CPU feature dispatch: the vectorised row kernels are compiled once per ISA level
// (native/kernels/*_avx512.cc, *_avx2.cc, *_generic.cc) and the best one the CPU supports is
// chosen at load. GRPO_CPU_ISA=generic|avx2|avx512 forces a lower level (tests use it to run
// every variant on one machine).
#pragma once

namespace grpo {

enum class CpuIsa : int { Generic = 0, Avx2 = 1, Avx512 = 2 };

CpuIsa cpu_isa_level();
const char* cpu_isa();

}  // namespace grpo
