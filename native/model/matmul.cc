#include "matmul.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "../common/half.h"

#include "../common/cpu.h"
#include "../common/threadpool.h"

namespace grpo {
namespace model {

// v8f on the baseline ISA is two SSE registers; it never crosses a non-inlined call boundary.
#pragma GCC diagnostic ignored "-Wpsabi"
#define MM_NS generic
#define MM_FMA 0
#define MM_ATTR
#include "matmul_body.inc"
#undef MM_NS
#undef MM_FMA
#undef MM_ATTR

// The AVX2+FMA variant exists on x86 only; other CPUs build and use the baseline one.
#if defined(__x86_64__) || defined(__i386__)
#define GRPO_MODEL_AVX2 1
#include <immintrin.h>
#define MM_NS avx2
#define MM_FMA 1
#define MM_ATTR __attribute__((target("avx2,fma")))
#include "matmul_body.inc"
#undef MM_NS
#undef MM_FMA
#undef MM_ATTR
#else
#define GRPO_MODEL_AVX2 0
#endif

namespace {
bool use_avx2() {
  static const bool yes = GRPO_MODEL_AVX2 && cpu_isa_level() >= CpuIsa::Avx2;
  return yes;
}
// Work per parallel chunk of at least ~64k multiply-adds, so tiny calls (one decode row) stay
// on the calling thread.
int64_t min_chunk(int64_t per_item) { return std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, per_item)); }
}  // namespace

void matmul(const float* X, const float* W, const float* bias, float* Y, int64_t N, int64_t in, int64_t out, bool accumulate) {
  const int64_t blocks = (N + 5) / 6;  // 6-row register tiles
  const bool fast = use_avx2();
  parallel_for(blocks, [&](int64_t b, int64_t e, int) {
    const int64_t n0 = b * 6, n1 = std::min(N, e * 6);
#if GRPO_MODEL_AVX2
    if (fast) return avx2::mm_range(X, W, bias, Y, n0, n1, in, out, accumulate);
#endif
    generic::mm_range(X, W, bias, Y, n0, n1, in, out, accumulate);
  }, min_chunk(6 * in * out));
}

void matmul_dw(const float* X, const float* dY, float* dW, float* db, int64_t N, int64_t in, int64_t out) {
  const bool fast = use_avx2();
  // Tokens per cache block: a ~128 KiB slice of dY.
  const int64_t nb = std::max<int64_t>(16, (int64_t(1) << 15) / std::max<int64_t>(1, out));
  // Items: 6-row blocks of dW, then (if db) one item per 64 columns of db.
  const int64_t wblocks = (in + 5) / 6;
  const int64_t bblocks = db ? (out + 63) / 64 : 0;
  parallel_for(wblocks + bblocks, [&](int64_t b, int64_t e, int) {
    // dW rows of this chunk together, so each token block of dY is reused by all of them.
    const int64_t wb = std::min(e, wblocks);
    if (b < wb) {
      const int64_t i0 = b * 6, i1 = std::min(in, wb * 6);
#if GRPO_MODEL_AVX2
      if (fast)
        avx2::dw_range(X, dY, dW, i0, i1, N, in, out, nb);
      else
#endif
        generic::dw_range(X, dY, dW, i0, i1, N, in, out, nb);
    }
    for (int64_t it = std::max(b, wblocks); it < e; ++it) {
      const int64_t o0 = (it - wblocks) * 64, o1 = std::min(out, o0 + 64);
      generic::db_range(dY, db, o0, o1, N, out);
    }
  }, 1);
}

namespace {
// Output columns per panel of the bf16 matmuls: a [256, 64] block of the widened panel (64 KiB)
// stays in L2 while every row block uses it.
constexpr int64_t kPanel = 64;

// Y = init + X · Wf where Wf[i, o] = widen(i, o) (a bf16 matrix read in either layout): the
// float32 panel [in, 64] of each 64 outputs is built per thread and multiplied as mm_range would.
template <class Widen>
void panel_matmul(const float* X, const float* bias, float* Y, int64_t N, int64_t in, int64_t out, bool acc, Widen widen) {
  const int64_t panels = (out + kPanel - 1) / kPanel;
  const bool fast = use_avx2();
  parallel_for(panels, [&](int64_t p0, int64_t p1, int) {
    thread_local std::vector<float> wp;
    if (wp.size() < static_cast<size_t>(in * kPanel)) wp.resize(static_cast<size_t>(in * kPanel));
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t o0 = p * kPanel, cols = std::min(kPanel, out - o0);
      widen(wp.data(), o0, cols);
      const float* b = bias ? bias + o0 : nullptr;
#if GRPO_MODEL_AVX2
      if (fast) {
        avx2::mm_panel(X, wp.data(), kPanel, b, Y + o0, N, in, out, cols, acc);
        continue;
      }
#endif
      generic::mm_panel(X, wp.data(), kPanel, b, Y + o0, N, in, out, cols, acc);
    }
  }, std::max<int64_t>(1, min_chunk(N * in * kPanel)));
}
}  // namespace

void matmul_bf16_nt(const float* X, const uint16_t* W, const float* bias, float* Y, int64_t N, int64_t in, int64_t out, bool accumulate) {
  panel_matmul(X, bias, Y, N, in, out, accumulate, [&](float* wp, int64_t o0, int64_t cols) {
    for (int64_t c = 0; c < cols; ++c) {
      const uint16_t* row = W + (o0 + c) * in;
      for (int64_t i = 0; i < in; ++i) wp[i * kPanel + c] = bf16_to_float(row[i]);
    }
  });
}

void matmul_bf16_nn(const float* X, const uint16_t* W, float* Y, int64_t N, int64_t in, int64_t out, bool accumulate) {
  panel_matmul(X, nullptr, Y, N, in, out, accumulate, [&](float* wp, int64_t o0, int64_t cols) {
    for (int64_t i = 0; i < in; ++i) {
      const uint16_t* row = W + i * out + o0;
      for (int64_t c = 0; c < cols; ++c) wp[i * kPanel + c] = bf16_to_float(row[c]);
    }
  });
}

void transpose(const float* W, float* WT, int64_t in, int64_t out) {
  for (int64_t i0 = 0; i0 < in; i0 += 32)
    for (int64_t o0 = 0; o0 < out; o0 += 32)
      for (int64_t i = i0; i < std::min(in, i0 + 32); ++i)
        for (int64_t o = o0; o < std::min(out, o0 + 32); ++o) WT[o * in + i] = W[i * out + o];
}

}  // namespace model
}  // namespace grpo
