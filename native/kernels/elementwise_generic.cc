// The generic build of the elementwise kernels (compile flags: CMakeLists.txt, by file name).
#define GRPO_ELEM_NS elem_generic
#define GRPO_ELEM_ISA "generic"
#include "elementwise_impl.h"

namespace grpo {
const ElementwiseKernels* elementwise_kernels_generic() { return &elem_generic::kTable; }
}  // namespace grpo
