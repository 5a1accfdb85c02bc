// bfloat16 / float16 <-> float32, usable from C++ and CUDA. Conversion to float is exact;
// conversion from float rounds to nearest even (NaN stays NaN), the same on both backends.
#pragma once
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define GRPO_HD __host__ __device__ __forceinline__
#else
#define GRPO_HD inline
#endif

namespace grpo {

GRPO_HD float bits_to_float(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}
GRPO_HD uint32_t float_to_bits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

GRPO_HD float bf16_to_float(uint16_t h) { return bits_to_float(static_cast<uint32_t>(h) << 16); }

GRPO_HD uint16_t float_to_bf16(float f) {
  uint32_t u = float_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(u >> 16);
}

GRPO_HD float f16_to_float(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  if (exp == 0) {
    if (man == 0) return bits_to_float(sign);
    // subnormal: value = man * 2^-24
    float v = static_cast<float>(man) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  if (exp == 31) return bits_to_float(sign | 0x7f800000u | (man << 13));
  return bits_to_float(sign | ((exp + 112u) << 23) | (man << 13));
}

GRPO_HD uint16_t float_to_f16(float f) {
  uint32_t u = float_to_bits(f);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (a < 0x38800000u) {
    // subnormal or zero in f16: round a * 2^24 to the nearest integer, ties to even
    float v = bits_to_float(a) * 16777216.0f;  // exact scaling by 2^24
    uint32_t m = static_cast<uint32_t>(v);
    float frac = v - static_cast<float>(m);
    if (frac > 0.5f || (frac == 0.5f && (m & 1u))) ++m;
    return static_cast<uint16_t>(sign | m);
  }
  uint32_t r = a + 0xfffu + ((a >> 13) & 1u);  // round to nearest even at bit 13
  return static_cast<uint16_t>(sign | ((r - (112u << 23)) >> 13));
}

// Load element i of a float32 / bf16 / f16 buffer as float.
template <int DT> GRPO_HD float load_as_float(const void* p, int64_t i);
template <> GRPO_HD float load_as_float<0>(const void* p, int64_t i) { return static_cast<const float*>(p)[i]; }
template <> GRPO_HD float load_as_float<1>(const void* p, int64_t i) { return bf16_to_float(static_cast<const uint16_t*>(p)[i]); }
template <> GRPO_HD float load_as_float<2>(const void* p, int64_t i) { return f16_to_float(static_cast<const uint16_t*>(p)[i]); }

}  // namespace grpo
