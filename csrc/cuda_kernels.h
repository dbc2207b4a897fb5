// CUDA launchers on raw device pointers. This header has no CUDA types so that the bindings can be
// compiled by the host compiler; cuda_kernels.cu implements it, cuda_stub.cpp replaces it when the
// module is built without CUDA.
//
// Errors: cf::NativeUnavailable (no CUDA / no GPU), std::invalid_argument (bad pointer, alignment,
// dtype), std::runtime_error (CUDA API or launch failure). Launches are asynchronous on `stream`
// (a cudaStream_t as an integer; 0 = legacy default stream).
#pragma once

#include <cstdint>
#include <string>

namespace cf::cuda {

enum class DType { F32, F16, U8 };

bool compiled();
// Number of usable devices; 0 (never an exception or abort) without driver or GPU.
int device_count() noexcept;
// Throws cf::NativeUnavailable naming `fn` when the CUDA path cannot run here.
void require_available(const std::string& fn);

void normal_fill(uintptr_t out, int64_t batch, int64_t per_sample, uint64_t seed, uint64_t offset,
                 uint64_t first_sample, uintptr_t stream);

// Exactly one of t_dev (device float32 [batch]) and t_host (host float32 [batch]) is non-null.
// eps == 0: generated noise; else a device float32 [batch, per_sample] array.
void renoise(uintptr_t x0, uintptr_t x1, uintptr_t t_dev, const float* t_host, uintptr_t eps,
             uintptr_t out, int64_t batch, int64_t per_sample, DType dtype, float sigma, uint64_t seed,
             uint64_t offset, uint64_t first_sample, uintptr_t stream);

// src: U8 or F32; out: F32 or F16.
void preprocess(uintptr_t src, DType src_dtype, uintptr_t out, DType out_dtype, int64_t numel,
                uintptr_t stream);
// src: F32 or F16; out: F32 or U8.
void postprocess(uintptr_t src, DType src_dtype, uintptr_t out, DType out_dtype, int64_t numel,
                 uintptr_t stream);

}  // namespace cf::cuda
