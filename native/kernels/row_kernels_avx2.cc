// The avx2 build of the row kernels (compile flags: CMakeLists.txt, by file name).
#define GRPO_ROWK_NS isa_avx2
#define GRPO_ROWK_ISA "avx2"
#include "row_kernels_impl.h"

namespace grpo {
const RowKernels* row_kernels_avx2() { return &isa_avx2::kTable; }
}  // namespace grpo
