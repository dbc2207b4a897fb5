// CUDA kernels: the same per-element math as the CPU path (cf_math.h), on device pointers.
// Build with --fmad=false (no FMA contraction), IEEE division and sqrt, no flush-to-zero.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cf_math.h"
#include "cuda_kernels.h"
#include "errors.h"

namespace cf::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxGrid = 65535;  // grid-stride loops cover the rest

std::string error_text(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

void check(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess) {
    cudaGetLastError();  // reset the (non-sticky) last-error state for later calls
    throw std::runtime_error("cheartflow CUDA: " + what + " failed (" + error_text(e) + ")");
  }
}

std::string hex(uintptr_t p) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(p));
  return buf;
}

// ------------------------------------------------------------------------------------------
// Device code
// ------------------------------------------------------------------------------------------

// One work item = one Philox block (4 consecutive elements) of one sample.
struct BlockIndex {
  int64_t sample, block, base;
  int count;
};

__device__ __forceinline__ BlockIndex block_index(int64_t item, int64_t nblk, int64_t per_sample) {
  BlockIndex ix;
  ix.sample = item / nblk;
  ix.block = item - ix.sample * nblk;
  ix.base = ix.sample * per_sample + 4 * ix.block;
  const int64_t left = per_sample - 4 * ix.block;
  ix.count = left < 4 ? static_cast<int>(left) : 4;
  return ix;
}

__device__ __forceinline__ int64_t grid_start() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ int64_t grid_stride() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

// 4-element vector access; only used when every base address is suitably aligned.
__device__ __forceinline__ void load4(const float* p, float v[4]) {
  const float4 q = *reinterpret_cast<const float4*>(p);
  v[0] = q.x;
  v[1] = q.y;
  v[2] = q.z;
  v[3] = q.w;
}

__device__ __forceinline__ void load4(const uint16_t* p, float v[4]) {
  const uint2 q = *reinterpret_cast<const uint2*>(p);  // little-endian: element 0 in low bits
  v[0] = f16_bits_to_f32(static_cast<uint16_t>(q.x & 0xFFFFu));
  v[1] = f16_bits_to_f32(static_cast<uint16_t>(q.x >> 16));
  v[2] = f16_bits_to_f32(static_cast<uint16_t>(q.y & 0xFFFFu));
  v[3] = f16_bits_to_f32(static_cast<uint16_t>(q.y >> 16));
}

__device__ __forceinline__ void store4(float* p, const float v[4]) {
  *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
}

__device__ __forceinline__ void store4(uint16_t* p, const float v[4]) {
  uint2 q;
  q.x = static_cast<uint32_t>(f32_to_f16_bits(v[0])) | (static_cast<uint32_t>(f32_to_f16_bits(v[1])) << 16);
  q.y = static_cast<uint32_t>(f32_to_f16_bits(v[2])) | (static_cast<uint32_t>(f32_to_f16_bits(v[3])) << 16);
  *reinterpret_cast<uint2*>(p) = q;
}

__global__ void normal_fill_kernel(float* out, int64_t batch, int64_t per_sample, int64_t nblk,
                                   uint64_t seed, uint64_t offset, uint64_t first_sample, bool vec) {
  const int64_t total = batch * nblk;
  for (int64_t item = grid_start(); item < total; item += grid_stride()) {
    const BlockIndex ix = block_index(item, nblk, per_sample);
    const F32x4 z = normal4(static_cast<uint32_t>(ix.block), static_cast<uint32_t>(first_sample + ix.sample),
                            offset, seed);
    if (vec) {
      store4(out + ix.base, z.v);
    } else {
      for (int l = 0; l < ix.count; ++l) out[ix.base + l] = z.v[l];
    }
  }
}

template <class T>
__global__ void renoise_kernel(const T* x0, const T* x1, const float* t, const float* eps, T* out,
                               int64_t batch, int64_t per_sample, int64_t nblk, float sigma, uint64_t seed,
                               uint64_t offset, uint64_t first_sample, bool vec) {
  const int64_t total = batch * nblk;
  for (int64_t item = grid_start(); item < total; item += grid_stride()) {
    const BlockIndex ix = block_index(item, nblk, per_sample);
    const RenoiseCoef k = renoise_coef(t[ix.sample], sigma);
    F32x4 z;
    if (eps == nullptr) {
      z = normal4(static_cast<uint32_t>(ix.block), static_cast<uint32_t>(first_sample + ix.sample), offset, seed);
    } else if (vec) {
      load4(eps + ix.base, z.v);
    } else {
      for (int l = 0; l < ix.count; ++l) z.v[l] = eps[ix.base + l];
    }
    if (vec) {  // all four loads happen before the store, so out may alias x0 / x1
      float a[4], b[4], r[4];
      load4(x0 + ix.base, a);
      load4(x1 + ix.base, b);
      for (int l = 0; l < 4; ++l) r[l] = renoise_value(k, a[l], b[l], z.v[l]);
      store4(out + ix.base, r);
    } else {
      for (int l = 0; l < ix.count; ++l) {
        const int64_t i = ix.base + l;
        store_f32(out + i, renoise_value(k, load_f32(x0 + i), load_f32(x1 + i), z.v[l]));
      }
    }
  }
}

template <class Src, class Dst>
__global__ void preprocess_kernel(const Src* src, Dst* out, int64_t numel) {
  for (int64_t i = grid_start(); i < numel; i += grid_stride()) store_f32(out + i, preprocess_value(src[i]));
}

__device__ __forceinline__ void store_post(float* p, float x) { *p = postprocess_unit(x); }
__device__ __forceinline__ void store_post(uint8_t* p, float x) { *p = postprocess_u8(x); }

template <class Src, class Dst>
__global__ void postprocess_kernel(const Src* src, Dst* out, int64_t numel) {
  for (int64_t i = grid_start(); i < numel; i += grid_stride()) store_post(out + i, load_f32(src + i));
}

// ------------------------------------------------------------------------------------------
// Host helpers
// ------------------------------------------------------------------------------------------

unsigned grid_for(int64_t items) {
  return static_cast<unsigned>(std::min<int64_t>((items + kThreads - 1) / kThreads, kMaxGrid));
}

size_t dtype_size(DType d) { return d == DType::F32 ? 4 : d == DType::F16 ? 2 : 1; }

struct NamedPtr {
  const char* name;
  uintptr_t ptr;
  size_t align;  // required alignment in bytes
};

// Checks that every pointer is device (or managed) memory, aligned, and on one device; returns it.
int common_device(const std::string& fn, const std::vector<NamedPtr>& ptrs) {
  int device = -1;
  for (const NamedPtr& p : ptrs) {
    const std::string what = fn + ": " + p.name + " = " + hex(p.ptr);
    if (p.ptr == 0) throw std::invalid_argument(what + " is a null pointer");
    if (p.ptr % p.align != 0) {
      throw std::invalid_argument(what + " is not aligned to " + std::to_string(p.align) + " bytes");
    }
    cudaPointerAttributes attr{};
    const cudaError_t e = cudaPointerGetAttributes(&attr, reinterpret_cast<const void*>(p.ptr));
    if (e != cudaSuccess) {
      cudaGetLastError();
      throw std::invalid_argument(what + " is not a valid CUDA pointer (" + error_text(e) + ")");
    }
    if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged) {
      throw std::invalid_argument(what + " is not CUDA device memory (host or unregistered memory)");
    }
    if (device >= 0 && attr.device != device) {
      throw std::invalid_argument(what + " is on device " + std::to_string(attr.device) +
                                  " but the other arrays are on device " + std::to_string(device));
    }
    device = attr.device;
  }
  return device;
}

// out may be exactly an input buffer (in-place) but must not partially overlap it.
void require_no_partial_overlap(const std::string& fn, uintptr_t out, uintptr_t in, size_t bytes, const char* name) {
  if (out != in && out < in + bytes && in < out + bytes) {
    throw std::invalid_argument(fn + ": out_ptr partially overlaps " + name + "; use the same buffer or a separate one");
  }
}

// Makes `device` current for the scope (the caller's stream belongs to that device).
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) check(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceScope() { cudaSetDevice(previous_); }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int previous_ = 0;
};

// Stream-ordered device copy of a small host array (freed on the same stream after the kernel).
class StreamBuffer {
 public:
  StreamBuffer(const void* host, size_t bytes, cudaStream_t stream) : stream_(stream) {
    check(cudaMallocAsync(&ptr_, bytes, stream), "cudaMallocAsync");
    // From pageable memory this returns once `host` has been staged, so it may be freed after.
    const cudaError_t e = cudaMemcpyAsync(ptr_, host, bytes, cudaMemcpyHostToDevice, stream);
    if (e != cudaSuccess) {
      cudaFreeAsync(ptr_, stream_);
      check(e, "cudaMemcpyAsync");
    }
  }
  ~StreamBuffer() { cudaFreeAsync(ptr_, stream_); }
  StreamBuffer(const StreamBuffer&) = delete;
  StreamBuffer& operator=(const StreamBuffer&) = delete;
  const float* data() const { return static_cast<const float*>(ptr_); }

 private:
  void* ptr_ = nullptr;
  cudaStream_t stream_;
};

cudaStream_t as_stream(uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

void check_launch(const std::string& fn) { check(cudaGetLastError(), fn + " kernel launch"); }

template <class T>
void launch_renoise(uintptr_t x0, uintptr_t x1, const float* t, uintptr_t eps, uintptr_t out, int64_t batch,
                    int64_t per_sample, float sigma, uint64_t seed, uint64_t offset, uint64_t first_sample,
                    cudaStream_t stream, bool vec) {
  const int64_t nblk = (per_sample + 3) / 4;
  renoise_kernel<T><<<grid_for(batch * nblk), kThreads, 0, stream>>>(
      reinterpret_cast<const T*>(x0), reinterpret_cast<const T*>(x1), t, reinterpret_cast<const float*>(eps),
      reinterpret_cast<T*>(out), batch, per_sample, nblk, sigma, seed, offset, first_sample, vec);
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Public launchers
// ------------------------------------------------------------------------------------------

bool compiled() { return true; }

int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

void require_available(const std::string& fn) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw NativeUnavailable(fn + ": no usable CUDA GPU (cudaGetDeviceCount: " + error_text(e) + ")");
  }
  if (n == 0) throw NativeUnavailable(fn + ": no CUDA GPU found");
}

void normal_fill(uintptr_t out, int64_t batch, int64_t per_sample, uint64_t seed, uint64_t offset,
                 uint64_t first_sample, uintptr_t stream) {
  const std::string fn = "normal_fill_cuda";
  require_available(fn);
  if (batch * per_sample == 0) return;
  const int device = common_device(fn, {{"out_ptr", out, 4}});
  DeviceScope scope(device);
  const int64_t nblk = (per_sample + 3) / 4;
  const bool vec = per_sample % 4 == 0 && out % 16 == 0;
  normal_fill_kernel<<<grid_for(batch * nblk), kThreads, 0, as_stream(stream)>>>(
      reinterpret_cast<float*>(out), batch, per_sample, nblk, seed, offset, first_sample, vec);
  check_launch(fn);
}

void renoise(uintptr_t x0, uintptr_t x1, uintptr_t t_dev, const float* t_host, uintptr_t eps, uintptr_t out,
             int64_t batch, int64_t per_sample, DType dtype, float sigma, uint64_t seed, uint64_t offset,
             uint64_t first_sample, uintptr_t stream) {
  const std::string fn = eps ? "renoise_with_noise_cuda" : "renoise_cuda";
  require_available(fn);
  if (dtype != DType::F32 && dtype != DType::F16) throw std::invalid_argument(fn + ": dtype must be float32 or float16");
  if (batch * per_sample == 0) return;
  const size_t es = dtype_size(dtype);
  std::vector<NamedPtr> ptrs{{"x0_ptr", x0, es}, {"x1_ptr", x1, es}, {"out_ptr", out, es}};
  if (t_host == nullptr) ptrs.push_back({"t_ptr", t_dev, 4});
  if (eps != 0) ptrs.push_back({"eps_ptr", eps, 4});
  const size_t bytes = static_cast<size_t>(batch * per_sample) * es;
  require_no_partial_overlap(fn, out, x0, bytes, "x0_ptr");
  require_no_partial_overlap(fn, out, x1, bytes, "x1_ptr");
  const int device = common_device(fn, ptrs);
  DeviceScope scope(device);
  const cudaStream_t s = as_stream(stream);
  const size_t vec_align = 4 * es;  // 16 bytes for float32, 8 for float16; eps is float32
  const bool vec = per_sample % 4 == 0 && x0 % vec_align == 0 && x1 % vec_align == 0 && out % vec_align == 0 &&
                   (eps == 0 || eps % 16 == 0);
  const float* t = reinterpret_cast<const float*>(t_dev);
  std::unique_ptr<StreamBuffer> t_buffer;
  if (t_host != nullptr) {
    t_buffer = std::make_unique<StreamBuffer>(t_host, static_cast<size_t>(batch) * sizeof(float), s);
    t = t_buffer->data();
  }
  if (dtype == DType::F32) {
    launch_renoise<float>(x0, x1, t, eps, out, batch, per_sample, sigma, seed, offset, first_sample, s, vec);
  } else {
    launch_renoise<uint16_t>(x0, x1, t, eps, out, batch, per_sample, sigma, seed, offset, first_sample, s, vec);
  }
  check_launch(fn);
}

void preprocess(uintptr_t src, DType src_dtype, uintptr_t out, DType out_dtype, int64_t numel, uintptr_t stream) {
  const std::string fn = "preprocess_cuda";
  require_available(fn);
  if ((src_dtype != DType::U8 && src_dtype != DType::F32) || (out_dtype != DType::F32 && out_dtype != DType::F16)) {
    throw std::invalid_argument(fn + ": src dtype must be uint8 or float32 and out dtype float32 or float16");
  }
  if (numel == 0) return;
  const int device = common_device(fn, {{"src_ptr", src, dtype_size(src_dtype)}, {"out_ptr", out, dtype_size(out_dtype)}});
  DeviceScope scope(device);
  const cudaStream_t s = as_stream(stream);
  const unsigned grid = grid_for(numel);
  if (src_dtype == DType::U8 && out_dtype == DType::F32) {
    preprocess_kernel<<<grid, kThreads, 0, s>>>(reinterpret_cast<const uint8_t*>(src), reinterpret_cast<float*>(out), numel);
  } else if (src_dtype == DType::U8) {
    preprocess_kernel<<<grid, kThreads, 0, s>>>(reinterpret_cast<const uint8_t*>(src), reinterpret_cast<uint16_t*>(out), numel);
  } else if (out_dtype == DType::F32) {
    preprocess_kernel<<<grid, kThreads, 0, s>>>(reinterpret_cast<const float*>(src), reinterpret_cast<float*>(out), numel);
  } else {
    preprocess_kernel<<<grid, kThreads, 0, s>>>(reinterpret_cast<const float*>(src), reinterpret_cast<uint16_t*>(out), numel);
  }
  check_launch(fn);
}

void postprocess(uintptr_t src, DType src_dtype, uintptr_t out, DType out_dtype, int64_t numel, uintptr_t stream) {
  const std::string fn = "postprocess_cuda";
  require_available(fn);
  if ((src_dtype != DType::F32 && src_dtype != DType::F16) || (out_dtype != DType::F32 && out_dtype != DType::U8)) {
    throw std::invalid_argument(fn + ": src dtype must be float32 or float16 and out dtype float32 or uint8");
  }
  if (numel == 0) return;
  const int device = common_device(fn, {{"src_ptr", src, dtype_size(src_dtype)}, {"out_ptr", out, dtype_size(out_dtype)}});
  DeviceScope scope(device);
  const cudaStream_t s = as_stream(stream);
  const unsigned grid = grid_for(numel);
  if (src_dtype == DType::F32 && out_dtype == DType::F32) {
    postprocess_kernel<<<grid, kThreads, 0, s>>>(reinterpret_cast<const float*>(src), reinterpret_cast<float*>(out), numel);
  } else if (src_dtype == DType::F32) {
    postprocess_kernel<<<grid, kThreads, 0, s>>>(reinterpret_cast<const float*>(src), reinterpret_cast<uint8_t*>(out), numel);
  } else if (out_dtype == DType::F32) {
    postprocess_kernel<<<grid, kThreads, 0, s>>>(reinterpret_cast<const uint16_t*>(src), reinterpret_cast<float*>(out), numel);
  } else {
    postprocess_kernel<<<grid, kThreads, 0, s>>>(reinterpret_cast<const uint16_t*>(src), reinterpret_cast<uint8_t*>(out), numel);
  }
  check_launch(fn);
}

}  // namespace cf::cuda
