// Picks the row-kernel table for this CPU once (cpu_isa_level(), GRPO_CPU_ISA).
#include "row_kernels.h"

#include "../common/cpu.h"

namespace grpo {

const RowKernels* row_kernels_generic();
const RowKernels* row_kernels_avx2();
const RowKernels* row_kernels_avx512();

const RowKernels* row_kernels_for(int level) {
  switch (level) {
    case 2: return row_kernels_avx512();
    case 1: return row_kernels_avx2();
    default: return row_kernels_generic();
  }
}

const RowKernels& row_kernels() {
  static const RowKernels* k = row_kernels_for(static_cast<int>(cpu_isa_level()));
  return *k;
}

}  // namespace grpo
