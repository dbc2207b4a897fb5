#include "cpu_kernels.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>
#include <type_traits>
#include <vector>

#include "cf_math.h"

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#endif

// float16 conversions with F16C instructions, chosen at run time (GCC / Clang on x86-64).
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define CF_F16C_DISPATCH 1
#include <immintrin.h>
#else
#define CF_F16C_DISPATCH 0
#endif

namespace cf::cpu {
namespace {

int default_num_threads() {
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

std::atomic<int> g_num_threads{default_num_threads()};

// Below this many work items per thread, spawning threads costs more than it saves.
constexpr int64_t kMinItemsPerThread = 16384;

// Runs fn(lo, hi) over a static partition of [0, n). Every item is computed by exactly the same
// code whatever the partition, so results never depend on the thread count.
template <class Fn>
void parallel_for(int64_t n, int64_t min_items_per_thread, Fn&& fn) {
  if (n <= 0) return;
  const int64_t max_useful = std::max<int64_t>(1, n / std::max<int64_t>(1, min_items_per_thread));
  const int64_t nthreads = std::min<int64_t>(g_num_threads.load(), max_useful);
  if (nthreads <= 1) {
    fn(int64_t{0}, n);
    return;
  }
  const int64_t chunk = (n + nthreads - 1) / nthreads;
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(nthreads - 1));
  for (int64_t i = 1; i < nthreads; ++i) {
    const int64_t lo = std::min(n, i * chunk), hi = std::min(n, lo + chunk);
    if (lo < hi) workers.emplace_back([&fn, lo, hi] { fn(lo, hi); });
  }
  fn(int64_t{0}, std::min(n, chunk));
  for (auto& w : workers) w.join();
}

int64_t num_blocks(int64_t per_sample) { return (per_sample + 3) / 4; }

// ------------------------------------------------------------------------------------------------
// Noise, a chunk of Philox blocks at a time: Philox on 4 counters per SIMD step (SSE2 on x86-64, scalar
// elsewhere), then Box-Muller as plain loops over arrays (structure of arrays, branch-free cf_math.h
// code) that the compiler vectorizes. Every value is computed by the same IEEE operations as normal4(),
// so the result is bit-identical to it (tests check it against the numpy reference).
// ------------------------------------------------------------------------------------------------

constexpr int kChunkBlocks = 64;  // Philox blocks per chunk: 256 elements

#if defined(__SSE2__) || defined(_M_X64)
// lo / hi 32-bit halves of the 4 products a[j] * m (unsigned 32 x 32 -> 64 bits).
inline void mul_hilo(__m128i a, __m128i m, __m128i& hi, __m128i& lo) {
  const __m128i p02 = _mm_mul_epu32(a, m);                      // [lo0 hi0 lo2 hi2]
  const __m128i p13 = _mm_mul_epu32(_mm_srli_epi64(a, 32), m);  // [lo1 hi1 lo3 hi3]
  const __m128i a02 = _mm_shuffle_epi32(p02, _MM_SHUFFLE(3, 1, 2, 0));  // [lo0 lo2 hi0 hi2]
  const __m128i a13 = _mm_shuffle_epi32(p13, _MM_SHUFFLE(3, 1, 2, 0));  // [lo1 lo3 hi1 hi3]
  lo = _mm_unpacklo_epi32(a02, a13);
  hi = _mm_unpackhi_epi32(a02, a13);
}

// Raw Philox words of blocks blk0 .. blk0 + n - 1 (n a multiple of 4): w[i][j] = word i of block blk0 + j.
inline void philox_words(uint32_t blk0, int n, uint32_t sample, uint64_t offset, uint64_t seed,
                         uint32_t (*w)[kChunkBlocks]) {
  const __m128i m0 = _mm_set1_epi32(static_cast<int>(kPhiloxM0)), m1 = _mm_set1_epi32(static_cast<int>(kPhiloxM1));
  uint32_t k0[10], k1[10];
  k0[0] = static_cast<uint32_t>(seed);
  k1[0] = static_cast<uint32_t>(seed >> 32);
  for (int r = 1; r < 10; ++r) {
    k0[r] = k0[r - 1] + kPhiloxW0;
    k1[r] = k1[r - 1] + kPhiloxW1;
  }
  const __m128i step = _mm_set_epi32(3, 2, 1, 0);
  for (int j = 0; j < n; j += 4) {
    __m128i c0 = _mm_add_epi32(_mm_set1_epi32(static_cast<int>(blk0 + static_cast<uint32_t>(j))), step);
    __m128i c1 = _mm_set1_epi32(static_cast<int>(sample));
    __m128i c2 = _mm_set1_epi32(static_cast<int>(static_cast<uint32_t>(offset)));
    __m128i c3 = _mm_set1_epi32(static_cast<int>(static_cast<uint32_t>(offset >> 32)));
    for (int r = 0; r < 10; ++r) {
      __m128i hi0, lo0, hi1, lo1;
      mul_hilo(c0, m0, hi0, lo0);
      mul_hilo(c2, m1, hi1, lo1);
      c0 = _mm_xor_si128(_mm_xor_si128(hi1, c1), _mm_set1_epi32(static_cast<int>(k0[r])));
      c1 = lo1;
      c2 = _mm_xor_si128(_mm_xor_si128(hi0, c3), _mm_set1_epi32(static_cast<int>(k1[r])));
      c3 = lo0;
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(w[0] + j), c0);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(w[1] + j), c1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(w[2] + j), c2);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(w[3] + j), c3);
  }
}
#else
inline void philox_words(uint32_t blk0, int n, uint32_t sample, uint64_t offset, uint64_t seed,
                         uint32_t (*w)[kChunkBlocks]) {
  const uint32_t c2 = static_cast<uint32_t>(offset), c3 = static_cast<uint32_t>(offset >> 32);
  for (int j = 0; j < n; ++j) {
    const U32x4 r = philox4x32_10(U32x4{{blk0 + static_cast<uint32_t>(j), sample, c2, c3}},
                                  static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
    for (int i = 0; i < 4; ++i) w[i][j] = r.v[i];
  }
}
#endif

// z[4*j + l] = normal4(blk0 + j, sample, offset, seed).v[l] for j < n <= kChunkBlocks.
void noise_chunk(uint32_t blk0, int n, uint32_t sample, uint64_t offset, uint64_t seed, float* z) {
  alignas(64) uint32_t w[4][kChunkBlocks];
  const int n4 = (n + 3) & ~3;  // whole SIMD steps; the extra blocks are computed and dropped
  philox_words(blk0, n4, sample, offset, seed, w);
  alignas(64) float lanes[4][kChunkBlocks];
  for (int pair = 0; pair < 2; ++pair) {  // same operations as box_muller4
    const uint32_t* wa = w[2 * pair];
    const uint32_t* wb = w[2 * pair + 1];
    float* za = lanes[2 * pair];
    float* zb = lanes[2 * pair + 1];
    for (int j = 0; j < n4; ++j) {
      const float ua = uniform_from_bits(wa[j]);
      const float r = sqrt_f32(-2.0f * log_f32(ua));
      const SinCos sc = sincos_2pi_n(uniform_numerator(wb[j]));
      za[j] = r * sc.c;
      zb[j] = r * sc.s;
    }
  }
  for (int j = 0; j < n; ++j) {
    for (int l = 0; l < 4; ++l) z[4 * j + l] = lanes[l][j];
  }
}

// out[i] = renoise_value(k, x0[i], x1[i], z[i]) for i < count (float32 math, T storage).
template <class T>
inline void convert_renoise_scalar(const RenoiseCoef& k, const T* x0, const T* x1, const float* z, T* out, int count) {
  for (int i = 0; i < count; ++i) store_f32(out + i, renoise_value(k, load_f32(x0 + i), load_f32(x1 + i), z[i]));
}

#if CF_F16C_DISPATCH
// float16 storage with the F16C conversion instructions (IEEE round-to-nearest-even, subnormals kept:
// the same bits as f16_bits_to_f32 / f32_to_f16_bits, NaN included), 4 elements per step, same math.
__attribute__((target("avx,f16c"))) void convert_renoise_f16c(const RenoiseCoef& k, const uint16_t* x0,
                                                                const uint16_t* x1, const float* z, uint16_t* out,
                                                                int count) {
  const __m128 omt = _mm_set1_ps(k.one_minus_t), tt = _mm_set1_ps(k.t), cn = _mm_set1_ps(k.noise);
  int i = 0;
  for (; i + 4 <= count; i += 4) {
    const __m128 a = _mm_mul_ps(omt, _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x0 + i))));
    const __m128 b = _mm_mul_ps(tt, _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x1 + i))));
    const __m128 c = _mm_mul_ps(cn, _mm_loadu_ps(z + i));
    const __m128 r = _mm_add_ps(_mm_add_ps(a, b), c);  // (a + b) + c, as renoise_value
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + i), _mm_cvtps_ph(r, _MM_FROUND_TO_NEAREST_INT));
  }
  convert_renoise_scalar(k, x0 + i, x1 + i, z + i, out + i, count - i);
}

bool cpu_has_f16c() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
}
std::atomic<bool> g_use_f16c{cpu_has_f16c()};
#endif

inline void convert_renoise(const RenoiseCoef& k, const float* x0, const float* x1, const float* z, float* out, int count) {
  convert_renoise_scalar(k, x0, x1, z, out, count);  // vectorized by the compiler
}

inline void convert_renoise(const RenoiseCoef& k, const uint16_t* x0, const uint16_t* x1, const float* z, uint16_t* out,
                            int count) {
#if CF_F16C_DISPATCH
  if (g_use_f16c.load(std::memory_order_relaxed)) {
    convert_renoise_f16c(k, x0, x1, z, out, count);
    return;
  }
#endif
  convert_renoise_scalar(k, x0, x1, z, out, count);
}

// Work items: (sample b, chunk c) of a [B, nchunks] grid; chunk c covers elements
// [c * 4 * kChunkBlocks, min(per_sample, (c + 1) * 4 * kChunkBlocks)) of sample b.
struct Chunks {
  int64_t per_sample, nblk, nchunks;
  explicit Chunks(int64_t n) : per_sample(n), nblk(num_blocks(n)), nchunks((num_blocks(n) + kChunkBlocks - 1) / kChunkBlocks) {}
  int64_t first_block(int64_t c) const { return c * kChunkBlocks; }
  int blocks(int64_t c) const { return static_cast<int>(std::min<int64_t>(kChunkBlocks, nblk - c * kChunkBlocks)); }
  int64_t first_elem(int64_t c) const { return c * 4 * kChunkBlocks; }
  int elems(int64_t c) const { return static_cast<int>(std::min<int64_t>(4 * kChunkBlocks, per_sample - first_elem(c))); }
};

// Calls body(b, c) for the work items lo..hi-1 of a [B, nchunks] grid.
template <class Body>
void for_chunks(int64_t lo, int64_t hi, int64_t nchunks, Body&& body) {
  int64_t b = lo / nchunks, c = lo % nchunks;
  for (int64_t item = lo; item < hi; ++item) {
    body(b, c);
    if (++c == nchunks) {
      c = 0;
      ++b;
    }
  }
}

constexpr int64_t kMinChunksPerThread = kMinItemsPerThread / (4 * kChunkBlocks);

}  // namespace

void set_num_threads(int n) { g_num_threads.store(std::max(1, n)); }
int get_num_threads() { return g_num_threads.load(); }

bool use_f16c(int enable) {
#if CF_F16C_DISPATCH
  if (enable >= 0) g_use_f16c.store(enable > 0 && cpu_has_f16c());
  return g_use_f16c.load();
#else
  (void)enable;
  return false;
#endif
}

void normal_fill(float* out, int64_t batch, int64_t per_sample, uint64_t seed, uint64_t offset,
                 uint64_t first_sample) {
  const Chunks ch(per_sample);
  parallel_for(batch * ch.nchunks, kMinChunksPerThread, [&](int64_t lo, int64_t hi) {
    alignas(64) float z[4 * kChunkBlocks];
    for_chunks(lo, hi, ch.nchunks, [&](int64_t b, int64_t c) {
      const int count = ch.elems(c);
      float* dst = out + b * per_sample + ch.first_elem(c);
      const bool direct = count == 4 * ch.blocks(c);  // whole blocks: write in place
      noise_chunk(static_cast<uint32_t>(ch.first_block(c)), ch.blocks(c), static_cast<uint32_t>(first_sample + b),
                  offset, seed, direct ? dst : z);
      if (!direct) std::memcpy(dst, z, static_cast<size_t>(count) * sizeof(float));
    });
  });
}

template <class T>
void renoise(const T* x0, const T* x1, const float* t, float sigma, const float* eps, uint64_t seed,
             uint64_t offset, uint64_t first_sample, T* out, int64_t batch, int64_t per_sample) {
  const Chunks ch(per_sample);
  parallel_for(batch * ch.nchunks, kMinChunksPerThread, [&](int64_t lo, int64_t hi) {
    alignas(64) float zbuf[4 * kChunkBlocks];
    for_chunks(lo, hi, ch.nchunks, [&](int64_t b, int64_t c) {
      const RenoiseCoef k = renoise_coef(t[b], sigma);
      const int64_t base = b * per_sample + ch.first_elem(c);
      const int count = ch.elems(c);
      const float* z = zbuf;
      if (eps != nullptr) {
        z = eps + base;
      } else {
        noise_chunk(static_cast<uint32_t>(ch.first_block(c)), ch.blocks(c), static_cast<uint32_t>(first_sample + b),
                    offset, seed, zbuf);
      }
      // Each element is read before it is written, so out may alias x0 / x1 exactly.
      convert_renoise(k, x0 + base, x1 + base, z, out + base, count);
    });
  });
}

template <class Src, class Dst>
void preprocess(const Src* src, Dst* out, int64_t numel) {
  parallel_for(numel, kMinItemsPerThread * 4, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) store_f32(out + i, preprocess_value(src[i]));
  });
}

template <class Src, class Dst>
void postprocess(const Src* src, Dst* out, int64_t numel) {
  parallel_for(numel, kMinItemsPerThread * 4, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      if constexpr (std::is_same_v<Dst, uint8_t>) {
        out[i] = postprocess_u8(load_f32(src + i));
      } else {
        out[i] = postprocess_unit(load_f32(src + i));
      }
    }
  });
}

void box_muller_parts(const uint32_t* bits, float* u, float* log_u, float* sin_2pi_u,
                      float* cos_2pi_u, int64_t n) {
  parallel_for(n, kMinItemsPerThread, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      u[i] = uniform_from_bits(bits[i]);
      log_u[i] = log_f32(u[i]);
      const SinCos sc = sincos_2pi_n(uniform_numerator(bits[i]));
      sin_2pi_u[i] = sc.s;
      cos_2pi_u[i] = sc.c;
    }
  });
}

template void renoise<float>(const float*, const float*, const float*, float, const float*, uint64_t,
                             uint64_t, uint64_t, float*, int64_t, int64_t);
template void renoise<uint16_t>(const uint16_t*, const uint16_t*, const float*, float, const float*,
                                uint64_t, uint64_t, uint64_t, uint16_t*, int64_t, int64_t);
template void preprocess<uint8_t, float>(const uint8_t*, float*, int64_t);
template void preprocess<uint8_t, uint16_t>(const uint8_t*, uint16_t*, int64_t);
template void preprocess<float, float>(const float*, float*, int64_t);
template void preprocess<float, uint16_t>(const float*, uint16_t*, int64_t);
template void postprocess<float, float>(const float*, float*, int64_t);
template void postprocess<float, uint8_t>(const float*, uint8_t*, int64_t);
template void postprocess<uint16_t, float>(const uint16_t*, float*, int64_t);
template void postprocess<uint16_t, uint8_t>(const uint16_t*, uint8_t*, int64_t);

}  // namespace cf::cpu
