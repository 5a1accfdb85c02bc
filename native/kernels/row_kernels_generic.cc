// The generic build of the row kernels (compile flags: CMakeLists.txt, by file name).
#define GRPO_ROWK_NS isa_generic
#define GRPO_ROWK_ISA "generic"
#include "row_kernels_impl.h"

namespace grpo {
const RowKernels* row_kernels_generic() { return &isa_generic::kTable; }
}  // namespace grpo
