// CPU kernels on raw, C-contiguous buffers. Arguments are validated by the caller (bindings.cpp).
// Arrays are [B, N] (N elements per sample); float16 is stored as uint16_t bits.
#pragma once

#include <cstdint>

namespace cf::cpu {

void set_num_threads(int n);
int get_num_threads();
// Testing aid: whether float16 renoise uses the F16C instructions (x86-64 CPUs that have them; same bits as
// the portable conversion). enable: 1 = use them when available, 0 = portable code, -1 = query only.
bool use_f16c(int enable);

void normal_fill(float* out, int64_t batch, int64_t per_sample, uint64_t seed, uint64_t offset,
                 uint64_t first_sample);

// eps == nullptr: noise is generated from (seed, offset, first_sample); else eps is [B, N] float32.
// out may alias x0 or x1 exactly.
template <class T>
void renoise(const T* x0, const T* x1, const float* t, float sigma, const float* eps, uint64_t seed,
             uint64_t offset, uint64_t first_sample, T* out, int64_t batch, int64_t per_sample);

template <class Src, class Dst>
void preprocess(const Src* src, Dst* out, int64_t numel);

template <class Src, class Dst>
void postprocess(const Src* src, Dst* out, int64_t numel);

// Testing aid: for each raw Philox word x, u = uniform(x), log(u), sin(2*pi*u), cos(2*pi*u).
void box_muller_parts(const uint32_t* bits, float* u, float* log_u, float* sin_2pi_u,
                      float* cos_2pi_u, int64_t n);

}  // namespace cf::cpu
