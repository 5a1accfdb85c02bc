// The avx512 build of the elementwise kernels (compile flags: CMakeLists.txt, by file name).
#define GRPO_ELEM_NS elem_avx512
#define GRPO_ELEM_ISA "avx512"
#include "elementwise_impl.h"

namespace grpo {
const ElementwiseKernels* elementwise_kernels_avx512() { return &elem_avx512::kTable; }
}  // namespace grpo
