// klFull CPU kernel (kl_full.h): per row, three passes over the two logits rows, which stay in
// cache between them for V up to ~100k floats per row pair (L2): the two maxima; the sums
// s = Σ e^{u−m}, s' = Σ e^{u'−m'}, t = Σ e^{u−m}·δ (double: KL of two close rows is a small
// difference of large terms); then, with a gradient, p_v·(δ_v − E)/τ per element.
// Rows are independent: spread over the thread pool, each row's result the same whoever runs it.
#include "kl_full.h"

#include <algorithm>
#include <cmath>

#include "../common/half.h"
#include "../common/threadpool.h"

namespace grpo {

namespace {

template <DType DT> inline float load(const void* p, int64_t i) {
  if constexpr (DT == DType::BF16) return bf16_to_float(static_cast<const uint16_t*>(p)[i]);
  else if constexpr (DT == DType::F16) return f16_to_float(static_cast<const uint16_t*>(p)[i]);
  else return static_cast<const float*>(p)[i];
}
template <DType DT> inline void store(void* p, int64_t i, float x) {
  if constexpr (DT == DType::BF16) static_cast<uint16_t*>(p)[i] = float_to_bf16(x);
  else if constexpr (DT == DType::F16) static_cast<uint16_t*>(p)[i] = float_to_f16(x);
  else static_cast<float*>(p)[i] = x;
}

template <DType DT> void kl_full_rows(const KlFullArgs& a) {
  const int64_t V = a.V;
  const float inv_t = 1.0f / a.temperature;
  parallel_for(a.N, [&](int64_t r0, int64_t r1, int) {
    for (int64_t n = r0; n < r1; ++n) {
      const int64_t o = n * V;  // seek to row n of both logits tensors
      float m = -INFINITY, mr = -INFINITY;
      for (int64_t v = 0; v < V; ++v) {
        m = std::max(m, load<DT>(a.logits, o + v) * inv_t);
        mr = std::max(mr, load<DT>(a.ref_logits, o + v) * inv_t);
      }
      double s = 0, sr = 0, t = 0;
      for (int64_t v = 0; v < V; ++v) {
        const float u = load<DT>(a.logits, o + v) * inv_t, ur = load<DT>(a.ref_logits, o + v) * inv_t;
        const double e = std::exp(static_cast<double>(u - m));
        s += e;
        sr += std::exp(static_cast<double>(ur - mr));
        t += e * (static_cast<double>(u) - static_cast<double>(ur));
      }
      const double E = t / s;  // E_p[δ]
      const double lse = static_cast<double>(m) + std::log(s), lse_r = static_cast<double>(mr) + std::log(sr);
      a.kl[n] = static_cast<float>(E - (lse - lse_r));
      if (!a.grad) continue;
      const double inv_d = 1.0 / static_cast<double>(a.temperature);
      const double c = (a.coef ? static_cast<double>(a.coef[n]) : 1.0) * inv_d;
      // the fused policy term (policy_grad): g·(1[v=y] − p)/τ − gh·(p/τ)(log p + H)
      const double pg = a.policy_grad ? static_cast<double>(a.policy_grad[n]) * inv_d : 0.0;
      const double pgh = a.policy_grad_h ? static_cast<double>(a.policy_grad_h[n]) * inv_d : 0.0;
      const double H = a.policy_grad_h ? static_cast<double>(a.entropy[n]) : 0.0;
      const int64_t y = a.policy_grad ? a.targets[n] : -1;
      for (int64_t v = 0; v < V; ++v) {
        const float u = load<DT>(a.logits, o + v) * inv_t, ur = load<DT>(a.ref_logits, o + v) * inv_t;
        const double lp = static_cast<double>(u) - lse, p = std::exp(lp);
        double g = c * p * ((static_cast<double>(u) - static_cast<double>(ur)) - E);
        if (a.policy_grad) g += pg * ((v == y ? 1.0 : 0.0) - p) - pgh * p * (lp + H);
        if (a.accumulate) g += static_cast<double>(load<DT>(a.grad, o + v));
        store<DT>(a.grad, o + v, static_cast<float>(g));
      }
    }
  }, std::max<int64_t>(1, 65536 / std::max<int64_t>(V, 1)));
}

}  // namespace

void kl_full_cpu(const KlFullArgs& a) {
  switch (a.dtype) {
    case DType::BF16: return kl_full_rows<DType::BF16>(a);
    case DType::F16: return kl_full_rows<DType::F16>(a);
    default: return kl_full_rows<DType::F32>(a);
  }
}

}  // namespace grpo
