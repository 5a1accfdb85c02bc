// The avx2 build of the elementwise kernels (compile flags: CMakeLists.txt, by file name).
#define GRPO_ELEM_NS elem_avx2
#define GRPO_ELEM_ISA "avx2"
#include "elementwise_impl.h"

namespace grpo {
const ElementwiseKernels* elementwise_kernels_avx2() { return &elem_avx2::kTable; }
}  // namespace grpo
