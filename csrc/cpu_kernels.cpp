#include "cpu_kernels.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <type_traits>
#include <vector>

#include "cf_math.h"

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

// Calls body(b, blk) for the (sample, Philox block) work items lo..hi-1 of a [B, nblk] grid.
template <class Body>
void for_blocks(int64_t lo, int64_t hi, int64_t nblk, Body&& body) {
  int64_t b = lo / nblk, blk = lo % nblk;
  for (int64_t item = lo; item < hi; ++item) {
    body(b, blk);
    if (++blk == nblk) {
      blk = 0;
      ++b;
    }
  }
}

}  // namespace

void set_num_threads(int n) { g_num_threads.store(std::max(1, n)); }
int get_num_threads() { return g_num_threads.load(); }

void normal_fill(float* out, int64_t batch, int64_t per_sample, uint64_t seed, uint64_t offset,
                 uint64_t first_sample) {
  const int64_t nblk = num_blocks(per_sample);
  parallel_for(batch * nblk, kMinItemsPerThread / 4, [&](int64_t lo, int64_t hi) {
    for_blocks(lo, hi, nblk, [&](int64_t b, int64_t blk) {
      const F32x4 z = normal4(static_cast<uint32_t>(blk), static_cast<uint32_t>(first_sample + b),
                              offset, seed);
      const int64_t base = b * per_sample + 4 * blk;
      const int64_t count = std::min<int64_t>(4, per_sample - 4 * blk);
      for (int64_t l = 0; l < count; ++l) out[base + l] = z.v[l];
    });
  });
}

template <class T>
void renoise(const T* x0, const T* x1, const float* t, float sigma, const float* eps, uint64_t seed,
             uint64_t offset, uint64_t first_sample, T* out, int64_t batch, int64_t per_sample) {
  const int64_t nblk = num_blocks(per_sample);
  parallel_for(batch * nblk, kMinItemsPerThread / 4, [&](int64_t lo, int64_t hi) {
    for_blocks(lo, hi, nblk, [&](int64_t b, int64_t blk) {
      const RenoiseCoef k = renoise_coef(t[b], sigma);
      const int64_t base = b * per_sample + 4 * blk;
      const int64_t count = std::min<int64_t>(4, per_sample - 4 * blk);
      F32x4 z;
      if (eps != nullptr) {
        for (int64_t l = 0; l < count; ++l) z.v[l] = eps[base + l];
      } else {
        z = normal4(static_cast<uint32_t>(blk), static_cast<uint32_t>(first_sample + b), offset, seed);
      }
      // Each element is read before it is written, so out may alias x0 / x1 exactly.
      for (int64_t l = 0; l < count; ++l) {
        const int64_t i = base + l;
        store_f32(out + i, renoise_value(k, load_f32(x0 + i), load_f32(x1 + i), z.v[l]));
      }
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
