// logprobs CPU kernel: spec §1. Shapes: N rows (tokens), V vocabulary entries per row.
// One read of each row: the vectorised row kernel (native/kernels/row_kernels.h) keeps a running
// max over L1-sized blocks, so each block is read from memory once and exponentiated from L1;
// ℓ and H are finished per row in double (finish_row). Rows are independent, so the result
// never depends on the thread count.
#include "logprobs.h"

#include "../common/half.h"
#include "../common/threadpool.h"
#include "../kernels/row_kernels.h"

namespace grpo {

namespace {
float load_logit(const TensorView& t, int64_t i) {
  switch (t.dtype) {
    case DType::BF16: return bf16_to_float(t.as<uint16_t>()[i]);
    case DType::F16: return f16_to_float(t.as<uint16_t>()[i]);
    default: return t.as<float>()[i];
  }
}
}  // namespace

void logprobs_cpu(const LogprobsArgs& a) {
  if (a.N == 0) return;
  const RowKernels& k = row_kernels();
  const int dt = static_cast<int>(a.logits.dtype);
  const int64_t esz = dtype_size(a.logits.dtype);
  const float inv = 1.0f / a.temperature;
  const double inv_d = 1.0 / static_cast<double>(a.temperature);
  const char* base = static_cast<const char*>(a.logits.data);
  // Short rows: give each chunk at least ~64K elements so threads are worth waking.
  int64_t min_rows = a.V >= 65536 ? 1 : 65536 / a.V;
  parallel_for(a.N, [&](int64_t b, int64_t e, int) {
    for (int64_t n = b; n < e; ++n) {  // row n of the logits
      const void* row = base + n * a.V * esz;
      int64_t y = a.targets[n];
      RowStats st = k.stats(dt, row, a.V, inv, y);
      RowResult r = finish_row(load_logit(a.logits, n * a.V + y), st.zmax, inv_d, st.sums);
      a.logp[n] = static_cast<float>(r.logp);
      if (a.entropy) a.entropy[n] = static_cast<float>(r.entropy);
    }
  }, min_rows);
}

}  // namespace grpo
