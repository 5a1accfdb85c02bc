// The avx512 build of the row kernels (compile flags: CMakeLists.txt, by file name).
#define GRPO_ROWK_NS isa_avx512
#define GRPO_ROWK_ISA "avx512"
#include "row_kernels_impl.h"

namespace grpo {
const RowKernels* row_kernels_avx512() { return &isa_avx512::kTable; }
}  // namespace grpo
