// Shared host/device math of the cheartflow kernels.
//
// Everything here is compiled both by the host C++ compiler (CPU path) and by nvcc (CUDA path),
// and mirrors cheartflow_sdk/kernels.py (the numpy reference) operation by operation, so the three
// implementations produce bit-identical float32 results. Rules that make that possible:
//   * only IEEE-754 +, -, *, / and sqrt on float32 (no libm transcendental), evaluated in the
//     order written (build with -ffp-contract=off / nvcc --fmad=false, never fast-math);
//   * integer and bit manipulation for everything else (exponent split, quadrant, fp16 rounding).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#endif

#if defined(__CUDACC__)
#define CF_HD __host__ __device__ __forceinline__
#else
#define CF_HD inline
#endif

namespace cf {

// ---------------------------------------------------------------------------------------------
// Bit casts
// ---------------------------------------------------------------------------------------------

CF_HD uint32_t f32_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
#endif
}

CF_HD float bits_to_f32(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
#endif
}

// ---------------------------------------------------------------------------------------------
// Philox4x32-10 (Random123: Salmon, Moraes, Dror, Shaw, SC'11)
// ---------------------------------------------------------------------------------------------

struct U32x4 {
  uint32_t v[4];
};

struct F32x4 {
  float v[4];
};

constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;

CF_HD uint32_t mulhi32(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __umulhi(a, b);
#else
  return static_cast<uint32_t>((static_cast<uint64_t>(a) * b) >> 32);
#endif
}

CF_HD U32x4 philox4x32_10(U32x4 c, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    const uint32_t hi0 = mulhi32(kPhiloxM0, c.v[0]);
    const uint32_t lo0 = kPhiloxM0 * c.v[0];
    const uint32_t hi1 = mulhi32(kPhiloxM1, c.v[2]);
    const uint32_t lo1 = kPhiloxM1 * c.v[2];
    c = U32x4{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// Uniforms and float32 transcendentals for Box-Muller
// ---------------------------------------------------------------------------------------------

constexpr float kTwoPowMinus22 = 2.384185791015625e-07f;  // 2^-22
constexpr float kTwoPowMinus24 = 5.9604644775390625e-08f;  // 2^-24

// Odd integer n = 2*(x >> 9) + 1 in [1, 2^24 - 1]; the uniform is n * 2^-24.
CF_HD uint32_t uniform_numerator(uint32_t x) { return 2u * (x >> 9) + 1u; }

// u = (2k+1) / 2^24, exact in float32, strictly inside (0, 1).
CF_HD float uniform_from_bits(uint32_t x) {
  // The numerator is < 2**24: converting it as int32 is exact and vectorizes everywhere.
  return static_cast<float>(static_cast<int32_t>(uniform_numerator(x))) * kTwoPowMinus24;
}

// ln(2) split so that e * kLn2Hi is exact for |e| < 128 (kLn2Hi has 17 significant bits).
constexpr float kLn2Hi = 6.9313812256e-01f;  // 0x3f317180
constexpr float kLn2Lo = 9.0580006145e-06f;  // 0x3717f7d1
// 2/3, 2/5, ..., 2/11: log(m) = 2*atanh(s) = 2s + s*(z*(2/3 + z*(2/5 + ...))), z = s*s.
constexpr float kLogP1 = 0.666666666666666667f;
constexpr float kLogP2 = 0.4f;
constexpr float kLogP3 = 0.285714285714285714f;
constexpr float kLogP4 = 0.222222222222222222f;
constexpr float kLogP5 = 0.181818181818181818f;

// Natural log of a positive *normal* float32 (all our uniforms are >= 2^-24).
// u = m * 2^e with m in [sqrt(1/2), sqrt(2)); log(m) from the atanh series in s = (m-1)/(m+1),
// |s| <= 0.1716, truncation error < 1e-9; log(u) = e*ln2_hi + (e*ln2_lo + log(m)).
CF_HD float log_f32(float u) {
  const uint32_t bits = f32_to_bits(u);
  int32_t e = static_cast<int32_t>(bits >> 23) - 127;
  uint32_t mbits = (bits & 0x007FFFFFu) | 0x3F800000u;  // m in [1, 2)
  const uint32_t big = mbits >= 0x3FB504F3u ? 1u : 0u;  // m >= float32(sqrt(2)): use m/2, e+1
  mbits -= big << 23;
  e += static_cast<int32_t>(big);
  const float f = bits_to_f32(mbits) - 1.0f;  // exact (Sterbenz: m in [1/2, 2])
  const float s = f / (2.0f + f);
  const float z = s * s;
  const float r = z * (kLogP1 + z * (kLogP2 + z * (kLogP3 + z * (kLogP4 + z * kLogP5))));
  const float log_m = (s + s) + s * r;
  const float ef = static_cast<float>(e);
  return ef * kLn2Hi + (ef * kLn2Lo + log_m);
}

constexpr float kHalfPi = 1.57079632679489661923f;
// Taylor coefficients of sin and cos; on |y| <= pi/4 the truncation error is < 2e-9.
constexpr float kSin1 = -1.66666666666666667e-01f;  // -1/3!
constexpr float kSin2 = 8.33333333333333333e-03f;   // 1/5!
constexpr float kSin3 = -1.98412698412698413e-04f;  // -1/7!
constexpr float kSin4 = 2.75573192239858907e-06f;   // 1/9!
constexpr float kCos1 = -0.5f;                      // -1/2!
constexpr float kCos2 = 4.16666666666666667e-02f;   // 1/4!
constexpr float kCos3 = -1.38888888888888889e-03f;  // -1/6!
constexpr float kCos4 = 2.48015873015873016e-05f;   // 1/8!
constexpr float kCos5 = -2.75573192239858907e-07f;  // -1/10!

struct SinCos {
  float s, c;
};

// sin and cos of 2*pi*n/2^24 for an integer n in [0, 2^24), i.e. of 2*pi*u for u = n*2^-24.
// The argument reduction is exact integer arithmetic: quadrant q = n >> 22 (= floor(4u)),
// remainder r = n mod 2^22 (= 4u - q in units of 2^-22); r > 2^21 moves to the next quadrant
// with r - 2^22 < 0, so the reduced angle y = (r * 2^-22) * pi/2 lies in [-pi/4, pi/4].
CF_HD SinCos sincos_2pi_n(uint32_t n) {
  int32_t r = static_cast<int32_t>(n & 0x003FFFFFu);
  const uint32_t next = r > 0x00200000 ? 1u : 0u;
  r -= static_cast<int32_t>(next << 22);
  const uint32_t q = (n >> 22) + next;
  const float y = (static_cast<float>(r) * kTwoPowMinus22) * kHalfPi;
  const float z = y * y;
  const float sn = y + y * (z * (kSin1 + z * (kSin2 + z * (kSin3 + z * kSin4))));
  const float cs = 1.0f + z * (kCos1 + z * (kCos2 + z * (kCos3 + z * (kCos4 + z * kCos5))));
  // Quadrant q: (sin, cos) = (sn, cs), (cs, -sn), (-sn, -cs), (-cs, sn) for q % 4 = 0, 1, 2, 3 (selects, no
  // branches, so that the CPU loops vectorize).
  const bool odd = (q & 1u) != 0u;
  const float s1 = odd ? cs : sn;
  const float c1 = odd ? sn : cs;
  const float s = (q & 2u) ? -s1 : s1;
  const float c = ((q + 1u) & 2u) ? -c1 : c1;
  return SinCos{s, c};
}

CF_HD float sqrt_f32(float x) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(x);
#else
  return std::sqrt(x);  // IEEE-754 sqrt is correctly rounded (not a libm approximation)
#endif
}

// Box-Muller on (lane0, lane1) and (lane2, lane3) of one Philox output block.
CF_HD F32x4 box_muller4(U32x4 x) {
  F32x4 z;
  for (int pair = 0; pair < 2; ++pair) {
    const float ua = uniform_from_bits(x.v[2 * pair]);
    const float r = sqrt_f32(-2.0f * log_f32(ua));
    const SinCos sc = sincos_2pi_n(uniform_numerator(x.v[2 * pair + 1]));
    z.v[2 * pair] = r * sc.c;
    z.v[2 * pair + 1] = r * sc.s;
  }
  return z;
}

// Standard normal noise of one Philox block: counter (block, sample, offset_lo, offset_hi),
// key (seed_lo, seed_hi). Element p of a sample is lane p % 4 of block p / 4.
CF_HD F32x4 normal4(uint32_t block, uint32_t sample, uint64_t offset, uint64_t seed) {
  const U32x4 ctr{{block, sample, static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32)}};
  return box_muller4(philox4x32_10(ctr, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)));
}

// ---------------------------------------------------------------------------------------------
// float16 storage (IEEE binary16 bits in a uint16_t), round-to-nearest-even like numpy astype
//
// The host versions are exact bit manipulation; device code uses the hardware conversions
// (cvt.f32.f16 and cvt.rn.f16.f32, IEEE round-to-nearest-even with subnormals, no flush-to-zero),
// which give the same bits for every non-NaN value. NaN stays NaN; only its payload may differ.
// ---------------------------------------------------------------------------------------------

CF_HD float f16_bits_to_f32(uint16_t h) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(h));
#else
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  const uint32_t man = h & 0x03FFu;
  if (exp == 0x1Fu) return bits_to_f32(sign | 0x7F800000u | (man << 13));  // inf / nan
  if (exp != 0u) return bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
  const float mag = static_cast<float>(man) * kTwoPowMinus24;  // zero or subnormal, exact
  return sign ? -mag : mag;
#endif
}

CF_HD uint16_t f32_to_f16_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __half_as_ushort(__float2half_rn(f));
#else
  const uint32_t bits = f32_to_bits(f);
  const uint32_t sign = (bits >> 16) & 0x8000u;
  const uint32_t a = bits & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u | ((a >> 13) & 0x03FFu));  // nan
  if (a >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // >= 65520 rounds to inf
  if (a >= 0x38800000u) {  // normal half: rebias exponent, round 13 dropped mantissa bits
    uint32_t h = (a - 0x38000000u) >> 13;
    const uint32_t rem = a & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h += 1u;  // carry may bump the exponent
    return static_cast<uint16_t>(sign | h);
  }
  const uint32_t e = a >> 23;
  if (e < 102u) return static_cast<uint16_t>(sign);  // < 2^-25: rounds to (signed) zero
  // Subnormal half: value / 2^-24 = mant * 2^(e - 126), shift right by 126 - e in [14, 24].
  const uint32_t mant = (a & 0x007FFFFFu) | 0x00800000u;
  const uint32_t shift = 126u - e;
  uint32_t h = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (h & 1u))) h += 1u;
  return static_cast<uint16_t>(sign | h);
#endif
}

CF_HD float load_f32(const float* p) { return *p; }
CF_HD float load_f32(const uint16_t* p) { return f16_bits_to_f32(*p); }
CF_HD float load_f32(const uint8_t* p) { return static_cast<float>(*p); }
CF_HD void store_f32(float* p, float v) { *p = v; }
CF_HD void store_f32(uint16_t* p, float v) { *p = f32_to_f16_bits(v); }

// ---------------------------------------------------------------------------------------------
// Re-noise bridge: out = (1-t)*x0 + t*x1 + t*(1-t)*sigma^2*eps, in this exact float32 order
// ---------------------------------------------------------------------------------------------

struct RenoiseCoef {
  float one_minus_t, t, noise;
};

CF_HD RenoiseCoef renoise_coef(float t, float sigma) {
  const float omt = 1.0f - t;
  return RenoiseCoef{omt, t, (t * omt) * (sigma * sigma)};
}

CF_HD float renoise_value(const RenoiseCoef& k, float x0, float x1, float eps) {
  const float a = k.one_minus_t * x0;
  const float b = k.t * x1;
  const float c = k.noise * eps;
  return (a + b) + c;
}

// ---------------------------------------------------------------------------------------------
// Pre/post-processing
// ---------------------------------------------------------------------------------------------

// uint8 sketch value v -> (v - 127.5) / 127.5: exactly -1 at 0, +1 at 255, odd-symmetric.
CF_HD float preprocess_value(uint8_t v) { return (static_cast<float>(v) - 127.5f) / 127.5f; }
// float sketch x in [0, 1] -> 2x - 1 (not clamped).
CF_HD float preprocess_value(float x) { return x * 2.0f - 1.0f; }

// Model output x in ~[-1, 1] -> clamp((x + 1) * 0.5, 0, 1); NaN maps to 0.
CF_HD float postprocess_unit(float x) {
  float y = (x + 1.0f) * 0.5f;
  y = (y > 0.0f) ? y : 0.0f;
  y = (y < 1.0f) ? y : 1.0f;
  return y;
}

// round-half-to-even(postprocess_unit(x) * 255). For 0 <= v <= 255, v + 2^23 has an ulp of 1,
// so the addition rounds v to the nearest integer (ties to even) and the subtraction is exact.
CF_HD uint8_t postprocess_u8(float x) {
  const float v = postprocess_unit(x) * 255.0f;
  return static_cast<uint8_t>(static_cast<int32_t>((v + 8388608.0f) - 8388608.0f));  // exact integer in [0, 255]
}

}  // namespace cf
