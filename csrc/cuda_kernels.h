// CUDA launchers on raw device pointers. This header has no CUDA types so that the bindings can be
// compiled by the host compiler; cuda_kernels.cu implements it, cuda_stub.cpp replaces it when the
// module is built without CUDA.
//
// Errors: cf::NativeUnavailable (no CUDA / no GPU), std::invalid_argument (bad pointer, alignment,
// dtype, stream), std::runtime_error (CUDA API or launch failure). Launches are asynchronous on
// `stream` (a cudaStream_t as an integer; 0 = legacy default stream) and never synchronize the device.
//
// Devices: every pointer of one call must be device (or managed) memory of one GPU. The kernel runs on
// that GPU (made current for the call, the caller's current device is restored after), so `stream`
// must belong to it; a legacy/per-thread default stream means that GPU's. With CUDA >= 12.8 a stream of
// another GPU is rejected with std::invalid_argument.
//
// CUDA graphs: all launchers are safe to call under stream capture (any capture mode; the pointer
// checks run in relaxed capture mode and enqueue nothing). Arguments are frozen into the captured
// kernel node, so values that change per replay must live in device memory: t (t_dev) and, through
// renoise_params, {seed, first_sample}. A host t (t_host) needs a stream-ordered upload and is
// rejected under capture.
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

// Graph-safe renoise: params is a device uint64[2] = {seed, first_sample} and t_dev a device float32
// [batch], both read by the kernel when it runs; offset (the step) is a launch argument. The noise
// equals renoise(seed, offset, first_sample) for the values present at run time, provided
// first_sample + batch <= 2**32 (the device cannot report an error; the sample counter wraps mod 2**32).
void renoise_params(uintptr_t x0, uintptr_t x1, uintptr_t t_dev, uintptr_t params, uintptr_t out, int64_t batch,
                    int64_t per_sample, DType dtype, float sigma, uint64_t offset, uintptr_t stream);

// src: U8 or F32; out: F32 or F16.
void preprocess(uintptr_t src, DType src_dtype, uintptr_t out, DType out_dtype, int64_t numel,
                uintptr_t stream);
// src: F32 or F16; out: F32 or U8.
void postprocess(uintptr_t src, DType src_dtype, uintptr_t out, DType out_dtype, int64_t numel,
                 uintptr_t stream);

}  // namespace cf::cuda
