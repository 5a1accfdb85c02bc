// Dense kernels of the built-in transformer (row-major, weights stored [in, out]).
// Each has a baseline and an AVX2+FMA variant, picked once at run time (common/cpu.h); within a
// variant every output element is a fixed-order reduction, independent of threads and batch.
#pragma once
#include <cstdint>

namespace grpo {
namespace model {

// Y[N, out] = init + X[N, in] · W[in, out]; init is Y itself (accumulate), else bias, else 0.
void matmul(const float* X, const float* W, const float* bias, float* Y, int64_t N, int64_t in, int64_t out, bool accumulate);
// dW[in, out] += X[N, in]^T · dY[N, out] and db[out] += sum_n dY[n, :] (db may be null).
void matmul_dw(const float* X, const float* dY, float* dW, float* db, int64_t N, int64_t in, int64_t out);
// The same product with a bfloat16 weight, accumulated in float32 (W widened one 64-column panel
// at a time; the result equals matmul on the widened matrix bit for bit):
//   _nt: Y[N, out] = init + X[N, in] · Wᵀ, W [out, in] (Hugging Face's layout of a projection);
//   _nn: Y[N, out] = init + X[N, in] · W,  W [in, out].
void matmul_bf16_nt(const float* X, const uint16_t* W, const float* bias, float* Y, int64_t N, int64_t in, int64_t out, bool accumulate);
void matmul_bf16_nn(const float* X, const uint16_t* W, float* Y, int64_t N, int64_t in, int64_t out, bool accumulate);
// WT[out, in] = W[in, out]^T.
void transpose(const float* W, float* WT, int64_t in, int64_t out);

}  // namespace model
}  // namespace grpo
