// CUDA kernels: the same per-element math as the CPU path (cf_math.h), on device pointers.
// Build with --fmad=false (no FMA contraction), IEEE division and sqrt, no flush-to-zero.
//
// Layout of the renoise / noise kernels: a 2-D grid, y over samples and x over 16-byte groups of one
// sample (4 float32 or 8 float16 elements = 1 or 2 Philox blocks), both grid-stride loops, so no
// integer division in the hot loop and any tensor size fits the grid limits. A group that lies fully
// inside its sample and whose addresses are all 16-byte aligned uses one vector load/store per array;
// any other group (odd sizes, the last group of a sample, misaligned views) takes the scalar path,
// which computes the very same values.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
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

constexpr int kMaxThreads = 256;
constexpr int64_t kMaxGridX = int64_t{1} << 20;  // hardware limit 2**31 - 1; grid-stride covers the rest
constexpr int64_t kMaxGridY = 65535;              // hardware limit of gridDim.y
constexpr int64_t kMaxGrid1D = int64_t{1} << 20;

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

// Elements per 16-byte vector of a storage type.
template <class T>
struct Vec;
template <>
struct Vec<float> {
  static constexpr int kElems = 4;
};
template <>
struct Vec<uint16_t> {
  static constexpr int kElems = 8;
};

__device__ __forceinline__ bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & uintptr_t{15}) == 0;
}

__device__ __forceinline__ int64_t x_start() { return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t x_stride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// 16-byte vector access (caller checked the alignment); values as float32.
__device__ __forceinline__ void load_vec(const float* p, float* v) {
  const float4 q = *reinterpret_cast<const float4*>(p);
  v[0] = q.x;
  v[1] = q.y;
  v[2] = q.z;
  v[3] = q.w;
}

__device__ __forceinline__ void load_vec(const uint16_t* p, float* v) {
  const uint4 q = *reinterpret_cast<const uint4*>(p);  // little-endian: element 0 in the low half
  const uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    v[2 * j] = f16_bits_to_f32(static_cast<uint16_t>(w[j] & 0xFFFFu));
    v[2 * j + 1] = f16_bits_to_f32(static_cast<uint16_t>(w[j] >> 16));
  }
}

__device__ __forceinline__ void store_vec(float* p, const float* v) {
  *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
}

__device__ __forceinline__ void store_vec(uint16_t* p, const float* v) {
  uint32_t w[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    w[j] = static_cast<uint32_t>(f32_to_f16_bits(v[2 * j])) | (static_cast<uint32_t>(f32_to_f16_bits(v[2 * j + 1])) << 16);
  }
  *reinterpret_cast<uint4*>(p) = make_uint4(w[0], w[1], w[2], w[3]);
}

__global__ void __launch_bounds__(kMaxThreads)
    normal_fill_kernel(float* out, int64_t batch, int64_t per_sample, uint64_t seed, uint64_t offset,
                       uint64_t first_sample) {
  const int64_t nblk = (per_sample + 3) / 4;
  for (int64_t b = blockIdx.y; b < batch; b += gridDim.y) {
    const uint32_t sample = static_cast<uint32_t>(first_sample + static_cast<uint64_t>(b));
    float* row = out + b * per_sample;
    for (int64_t blk = x_start(); blk < nblk; blk += x_stride()) {
      const F32x4 z = normal4(static_cast<uint32_t>(blk), sample, offset, seed);
      float* p = row + 4 * blk;
      const int64_t left = per_sample - 4 * blk;
      if (left >= 4 && aligned16(p)) {
        store_vec(p, z.v);
      } else {
        const int count = left < 4 ? static_cast<int>(left) : 4;
        for (int l = 0; l < count; ++l) p[l] = z.v[l];
      }
    }
  }
}

// out = renoise(x0, x1, t[b], sigma, eps) per element. Noise: eps (device float32 [batch, per_sample])
// when non-null, else generated from (seed, offset, first_sample), where params (when non-null) is a
// device uint64[2] = {seed, first_sample} read here at run time (graph-safe per-request values).
// out may be x0 or x1 (exact alias): every element is loaded before it is stored, by the same thread.
template <class T>
__global__ void __launch_bounds__(kMaxThreads)
    renoise_kernel(const T* x0, const T* x1, const float* t, const float* eps, T* out, int64_t batch,
                   int64_t per_sample, float sigma, uint64_t seed, uint64_t offset, uint64_t first_sample,
                   const uint64_t* params) {
  constexpr int G = Vec<T>::kElems;
  if (params != nullptr) {
    seed = params[0];
    first_sample = params[1];
  }
  const int64_t ngroups = (per_sample + G - 1) / G;
  for (int64_t b = blockIdx.y; b < batch; b += gridDim.y) {
    const RenoiseCoef k = renoise_coef(t[b], sigma);
    const uint32_t sample = static_cast<uint32_t>(first_sample + static_cast<uint64_t>(b));
    const int64_t row = b * per_sample;
    for (int64_t g = x_start(); g < ngroups; g += x_stride()) {
      const int64_t p0 = g * G;  // first element of the group within its sample
      const int64_t i0 = row + p0;
      const int64_t left = per_sample - p0;
      const int count = left < G ? static_cast<int>(left) : G;
      const bool vec = count == G && aligned16(x0 + i0) && aligned16(x1 + i0) && aligned16(out + i0) &&
                       (eps == nullptr || aligned16(eps + i0));
      float a[G], c[G], z[G];
      // Loads first (their latency overlaps the noise computation).
      if (vec) {
        load_vec(x0 + i0, a);
        load_vec(x1 + i0, c);
      } else {
#pragma unroll
        for (int l = 0; l < G; ++l) {
          a[l] = l < count ? load_f32(x0 + i0 + l) : 0.0f;
          c[l] = l < count ? load_f32(x1 + i0 + l) : 0.0f;
        }
      }
      if (eps != nullptr) {
        if (vec) {
#pragma unroll
          for (int j = 0; j < G / 4; ++j) load_vec(eps + i0 + 4 * j, z + 4 * j);
        } else {
#pragma unroll
          for (int l = 0; l < G; ++l) z[l] = l < count ? eps[i0 + l] : 0.0f;
        }
      } else {
        // Element p of the sample is lane p % 4 of Philox block p / 4; p0 / 4 = g * (G / 4).
#pragma unroll
        for (int j = 0; j < G / 4; ++j) {
          const F32x4 n = normal4(static_cast<uint32_t>(g * (G / 4) + j), sample, offset, seed);
#pragma unroll
          for (int l = 0; l < 4; ++l) z[4 * j + l] = n.v[l];
        }
      }
      float r[G];
#pragma unroll
      for (int l = 0; l < G; ++l) r[l] = renoise_value(k, a[l], c[l], z[l]);
      if (vec) {
        store_vec(out + i0, r);
      } else {
#pragma unroll
        for (int l = 0; l < G; ++l) {
          if (l < count) store_f32(out + i0 + l, r[l]);
        }
      }
    }
  }
}

template <class Src, class Dst>
__global__ void __launch_bounds__(kMaxThreads) preprocess_kernel(const Src* src, Dst* out, int64_t numel) {
  for (int64_t i = x_start(); i < numel; i += x_stride()) store_f32(out + i, preprocess_value(src[i]));
}

__device__ __forceinline__ void store_post(float* p, float x) { *p = postprocess_unit(x); }
__device__ __forceinline__ void store_post(uint8_t* p, float x) { *p = postprocess_u8(x); }

template <class Src, class Dst>
__global__ void __launch_bounds__(kMaxThreads) postprocess_kernel(const Src* src, Dst* out, int64_t numel) {
  for (int64_t i = x_start(); i < numel; i += x_stride()) store_post(out + i, load_f32(src + i));
}

// ------------------------------------------------------------------------------------------
// Host helpers
// ------------------------------------------------------------------------------------------

struct LaunchShape {
  dim3 grid, block;
};

// y: samples; x: `groups` work items per sample, blocks of up to kMaxThreads threads (fewer when a
// sample has few groups, so that tiny samples do not leave most threads idle).
LaunchShape shape_2d(int64_t groups, int64_t batch) {
  int threads = 32;
  while (threads < kMaxThreads && threads < groups) threads *= 2;
  const int64_t gx = std::min<int64_t>((groups + threads - 1) / threads, kMaxGridX);
  const int64_t gy = std::min<int64_t>(batch, kMaxGridY);
  return {dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy)), dim3(static_cast<unsigned>(threads))};
}

LaunchShape shape_1d(int64_t items) {
  const int64_t g = std::min<int64_t>((items + kMaxThreads - 1) / kMaxThreads, kMaxGrid1D);
  return {dim3(static_cast<unsigned>(g)), dim3(kMaxThreads)};
}

size_t dtype_size(DType d) { return d == DType::F32 ? 4 : d == DType::F16 ? 2 : 1; }

// batch * per_sample * 16 must fit in int64 (element and byte offsets of the kernels).
int64_t checked_numel(const std::string& fn, int64_t batch, int64_t per_sample) {
  if (batch < 0 || per_sample < 0 || (per_sample > 0 && batch > (INT64_MAX / 16) / per_sample)) {
    throw std::invalid_argument(fn + ": batch * per_sample = " + std::to_string(batch) + " * " +
                                std::to_string(per_sample) + " is too large");
  }
  return batch * per_sample;
}

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

struct Span {
  const char* name;
  uintptr_t ptr;
  size_t bytes;
};

// out may be exactly an input buffer (same start and size: in-place) when `same_ok`, else it must not
// overlap the input at all.
void require_no_partial_overlap(const std::string& fn, const Span& out, const Span& in, bool same_ok) {
  if (out.bytes == 0 || in.bytes == 0) return;
  const bool overlap = out.ptr < in.ptr + in.bytes && in.ptr < out.ptr + out.bytes;
  if (!overlap || (same_ok && out.ptr == in.ptr && out.bytes == in.bytes)) return;
  throw std::invalid_argument(fn + ": " + out.name + " overlaps " + in.name +
                              (same_ok ? "; use the same buffer (in-place) or a separate one" : "; use a separate buffer"));
}

// Runs the calling thread in relaxed stream-capture mode for the scope, so that the pointer and stream
// queries below (which enqueue nothing) never invalidate a caller's CUDA graph capture.
class RelaxedCaptureMode {
 public:
  RelaxedCaptureMode() {
    if (cudaThreadExchangeStreamCaptureMode(&mode_) != cudaSuccess) {
      cudaGetLastError();
      active_ = false;
    }
  }
  ~RelaxedCaptureMode() {
    if (active_) cudaThreadExchangeStreamCaptureMode(&mode_);
  }
  RelaxedCaptureMode(const RelaxedCaptureMode&) = delete;
  RelaxedCaptureMode& operator=(const RelaxedCaptureMode&) = delete;

 private:
  cudaStreamCaptureMode mode_ = cudaStreamCaptureModeRelaxed;
  bool active_ = true;
};

// Makes `device` current for the scope (the caller's stream belongs to that device) and restores the
// caller's current device afterwards.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) {
      check(cudaSetDevice(device), "cudaSetDevice");
      changed_ = true;
    }
  }
  ~DeviceScope() {
    if (changed_) cudaSetDevice(previous_);
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int previous_ = 0;
  bool changed_ = false;
};

cudaStream_t as_stream(uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

// A stream of another GPU than the data's cannot run the kernel: say so instead of a launch error.
void require_stream_on_device(const std::string& fn, uintptr_t stream, int device) {
#if CUDART_VERSION >= 12080
  const cudaStream_t s = as_stream(stream);
  if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return;  // the current device's
  int stream_device = -1;
  if (cudaStreamGetDevice(s, &stream_device) != cudaSuccess) {
    cudaGetLastError();  // cannot tell (old driver): an invalid stream still fails the launch check
    return;
  }
  if (stream_device != device) {
    throw std::invalid_argument(fn + ": stream " + hex(stream) + " belongs to device " + std::to_string(stream_device) +
                                " but the arrays are on device " + std::to_string(device));
  }
#else
  (void)fn;
  (void)stream;
  (void)device;
#endif
}

bool is_capturing(const std::string& fn, cudaStream_t s) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  check(cudaStreamIsCapturing(s, &status), fn + ": cudaStreamIsCapturing");
  return status != cudaStreamCaptureStatusNone;
}

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

void check_launch(const std::string& fn) { check(cudaGetLastError(), fn + " kernel launch"); }

// Shared by renoise_cuda, renoise_with_noise_cuda and renoise_cuda_params.
struct RenoiseCall {
  std::string fn;
  uintptr_t x0 = 0, x1 = 0, t_dev = 0, eps = 0, params = 0, out = 0;
  const float* t_host = nullptr;
  bool with_eps = false, with_params = false;  // eps / params are required pointers of the call
  int64_t batch = 0, per_sample = 0;
  DType dtype = DType::F32;
  float sigma = 0.0f;
  uint64_t seed = 0, offset = 0, first_sample = 0;
  uintptr_t stream = 0;
};

template <class T>
void launch_renoise(const RenoiseCall& c, const float* t, cudaStream_t s) {
  const LaunchShape ls = shape_2d((c.per_sample + Vec<T>::kElems - 1) / Vec<T>::kElems, c.batch);
  renoise_kernel<T><<<ls.grid, ls.block, 0, s>>>(
      reinterpret_cast<const T*>(c.x0), reinterpret_cast<const T*>(c.x1), t, reinterpret_cast<const float*>(c.eps),
      reinterpret_cast<T*>(c.out), c.batch, c.per_sample, c.sigma, c.seed, c.offset, c.first_sample,
      reinterpret_cast<const uint64_t*>(c.params));
}

void run_renoise(const RenoiseCall& c) {
  const std::string& fn = c.fn;
  require_available(fn);
  if (c.dtype != DType::F32 && c.dtype != DType::F16) throw std::invalid_argument(fn + ": dtype must be float32 or float16");
  const int64_t numel = checked_numel(fn, c.batch, c.per_sample);
  if (numel == 0) return;
  RelaxedCaptureMode relaxed;
  const size_t es = dtype_size(c.dtype);
  const size_t bytes = static_cast<size_t>(numel) * es;
  std::vector<NamedPtr> ptrs{{"x0_ptr", c.x0, es}, {"x1_ptr", c.x1, es}, {"out_ptr", c.out, es}};
  if (c.t_host == nullptr) ptrs.push_back({"t_ptr", c.t_dev, 4});
  if (c.with_eps) ptrs.push_back({"eps_ptr", c.eps, 4});
  if (c.with_params) ptrs.push_back({"params_ptr", c.params, 8});
  const int device = common_device(fn, ptrs);  // null, alignment, device memory, one GPU
  const Span out{"out_ptr", c.out, bytes};
  require_no_partial_overlap(fn, out, {"x0_ptr", c.x0, bytes}, true);
  require_no_partial_overlap(fn, out, {"x1_ptr", c.x1, bytes}, true);
  if (c.with_eps) require_no_partial_overlap(fn, out, {"eps_ptr", c.eps, static_cast<size_t>(numel) * 4}, true);
  if (c.t_host == nullptr) require_no_partial_overlap(fn, out, {"t_ptr", c.t_dev, static_cast<size_t>(c.batch) * 4}, false);
  if (c.with_params) require_no_partial_overlap(fn, out, {"params_ptr", c.params, 16}, false);
  DeviceScope scope(device);
  require_stream_on_device(fn, c.stream, device);
  const cudaStream_t s = as_stream(c.stream);
  const float* t = reinterpret_cast<const float*>(c.t_dev);
  std::unique_ptr<StreamBuffer> t_buffer;
  if (c.t_host != nullptr) {
    if (is_capturing(fn, s)) {
      throw std::invalid_argument(fn + ": t given as host values cannot be captured into a CUDA graph (the "
                                  "upload would be frozen); pass t as a device float32 array");
    }
    t_buffer = std::make_unique<StreamBuffer>(c.t_host, static_cast<size_t>(c.batch) * sizeof(float), s);
    t = t_buffer->data();
  }
  if (c.dtype == DType::F32) {
    launch_renoise<float>(c, t, s);
  } else {
    launch_renoise<uint16_t>(c, t, s);
  }
  check_launch(fn);
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
  RelaxedCaptureMode relaxed;  // a plain query, also while the caller captures a graph
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
  if (checked_numel(fn, batch, per_sample) == 0) return;
  RelaxedCaptureMode relaxed;
  const int device = common_device(fn, {{"out_ptr", out, 4}});
  DeviceScope scope(device);
  require_stream_on_device(fn, stream, device);
  const LaunchShape ls = shape_2d((per_sample + 3) / 4, batch);
  normal_fill_kernel<<<ls.grid, ls.block, 0, as_stream(stream)>>>(reinterpret_cast<float*>(out), batch, per_sample,
                                                                  seed, offset, first_sample);
  check_launch(fn);
}

void renoise(uintptr_t x0, uintptr_t x1, uintptr_t t_dev, const float* t_host, uintptr_t eps, uintptr_t out,
             int64_t batch, int64_t per_sample, DType dtype, float sigma, uint64_t seed, uint64_t offset,
             uint64_t first_sample, uintptr_t stream) {
  RenoiseCall c;
  c.fn = eps ? "renoise_with_noise_cuda" : "renoise_cuda";
  c.x0 = x0;
  c.x1 = x1;
  c.t_dev = t_dev;
  c.t_host = t_host;
  c.eps = eps;
  c.with_eps = eps != 0;
  c.out = out;
  c.batch = batch;
  c.per_sample = per_sample;
  c.dtype = dtype;
  c.sigma = sigma;
  c.seed = seed;
  c.offset = offset;
  c.first_sample = first_sample;
  c.stream = stream;
  run_renoise(c);
}

void renoise_params(uintptr_t x0, uintptr_t x1, uintptr_t t_dev, uintptr_t params, uintptr_t out, int64_t batch,
                    int64_t per_sample, DType dtype, float sigma, uint64_t offset, uintptr_t stream) {
  RenoiseCall c;
  c.fn = "renoise_cuda_params";
  c.x0 = x0;
  c.x1 = x1;
  c.t_dev = t_dev;
  c.params = params;
  c.with_params = true;
  c.out = out;
  c.batch = batch;
  c.per_sample = per_sample;
  c.dtype = dtype;
  c.sigma = sigma;
  c.offset = offset;
  c.stream = stream;
  run_renoise(c);  // a null t_ptr / params_ptr is rejected there like any null pointer
}

// What preprocess and postprocess share once their dtypes are checked: the size, device and overlap
// checks, the device scope and stream, and the launch check; `launch(shape, stream)` issues the kernel.
template <typename Launch>
void run_elementwise(const std::string& fn, uintptr_t src, DType src_dtype, uintptr_t out, DType out_dtype,
                     int64_t numel, uintptr_t stream, Launch&& launch) {
  if (checked_numel(fn, 1, numel) == 0) return;
  RelaxedCaptureMode relaxed;
  const size_t ss = dtype_size(src_dtype), os = dtype_size(out_dtype);
  const int device = common_device(fn, {{"src_ptr", src, ss}, {"out_ptr", out, os}});
  require_no_partial_overlap(fn, {"out_ptr", out, static_cast<size_t>(numel) * os},
                             {"src_ptr", src, static_cast<size_t>(numel) * ss}, src_dtype == out_dtype);
  DeviceScope scope(device);
  require_stream_on_device(fn, stream, device);
  launch(shape_1d(numel), as_stream(stream));
  check_launch(fn);
}

void preprocess(uintptr_t src, DType src_dtype, uintptr_t out, DType out_dtype, int64_t numel, uintptr_t stream) {
  const std::string fn = "preprocess_cuda";
  require_available(fn);
  if ((src_dtype != DType::U8 && src_dtype != DType::F32) || (out_dtype != DType::F32 && out_dtype != DType::F16)) {
    throw std::invalid_argument(fn + ": src dtype must be uint8 or float32 and out dtype float32 or float16");
  }
  run_elementwise(fn, src, src_dtype, out, out_dtype, numel, stream, [&](const LaunchShape& ls, cudaStream_t s) {
    if (src_dtype == DType::U8 && out_dtype == DType::F32) {
      preprocess_kernel<<<ls.grid, ls.block, 0, s>>>(reinterpret_cast<const uint8_t*>(src), reinterpret_cast<float*>(out), numel);
    } else if (src_dtype == DType::U8) {
      preprocess_kernel<<<ls.grid, ls.block, 0, s>>>(reinterpret_cast<const uint8_t*>(src), reinterpret_cast<uint16_t*>(out), numel);
    } else if (out_dtype == DType::F32) {
      preprocess_kernel<<<ls.grid, ls.block, 0, s>>>(reinterpret_cast<const float*>(src), reinterpret_cast<float*>(out), numel);
    } else {
      preprocess_kernel<<<ls.grid, ls.block, 0, s>>>(reinterpret_cast<const float*>(src), reinterpret_cast<uint16_t*>(out), numel);
    }
  });
}

void postprocess(uintptr_t src, DType src_dtype, uintptr_t out, DType out_dtype, int64_t numel, uintptr_t stream) {
  const std::string fn = "postprocess_cuda";
  require_available(fn);
  if ((src_dtype != DType::F32 && src_dtype != DType::F16) || (out_dtype != DType::F32 && out_dtype != DType::U8)) {
    throw std::invalid_argument(fn + ": src dtype must be float32 or float16 and out dtype float32 or uint8");
  }
  run_elementwise(fn, src, src_dtype, out, out_dtype, numel, stream, [&](const LaunchShape& ls, cudaStream_t s) {
    if (src_dtype == DType::F32 && out_dtype == DType::F32) {
      postprocess_kernel<<<ls.grid, ls.block, 0, s>>>(reinterpret_cast<const float*>(src), reinterpret_cast<float*>(out), numel);
    } else if (src_dtype == DType::F32) {
      postprocess_kernel<<<ls.grid, ls.block, 0, s>>>(reinterpret_cast<const float*>(src), reinterpret_cast<uint8_t*>(out), numel);
    } else if (out_dtype == DType::F32) {
      postprocess_kernel<<<ls.grid, ls.block, 0, s>>>(reinterpret_cast<const uint16_t*>(src), reinterpret_cast<float*>(out), numel);
    } else {
      postprocess_kernel<<<ls.grid, ls.block, 0, s>>>(reinterpret_cast<const uint16_t*>(src), reinterpret_cast<uint8_t*>(out), numel);
    }
  });
}

}  // namespace cf::cuda
