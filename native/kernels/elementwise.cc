// Picks the elementwise-kernel table for this CPU once (cpu_isa_level(), GRPO_CPU_ISA).
#include "elementwise.h"

#include "../common/cpu.h"

namespace grpo {

const ElementwiseKernels* elementwise_kernels_generic();
const ElementwiseKernels* elementwise_kernels_avx2();
const ElementwiseKernels* elementwise_kernels_avx512();

const ElementwiseKernels& elementwise_kernels() {
  static const ElementwiseKernels* k = [] {
    switch (static_cast<int>(cpu_isa_level())) {
      case 2: return elementwise_kernels_avx512();
      case 1: return elementwise_kernels_avx2();
      default: return elementwise_kernels_generic();
    }
  }();
  return *k;
}

}  // namespace grpo
