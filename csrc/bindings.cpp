// pybind11 module cheartflow_sdk._C: memory-safety checks and dispatch to the CPU / CUDA kernels.
// It checks what touching memory and converting arguments need (types, dtypes, shapes, strides, alignment,
// overlap, integer widths incl. the 32-bit Philox counter words); what values mean (t in [0, 1], sigma >= 0)
// is checked once, at the Python boundary (cheartflow_sdk.kernels), and trusted here.
// Errors: TypeError for a wrong type or dtype, ValueError for a wrong shape, layout or width,
// cheartflow_sdk.errors.NativeUnavailableError (a RuntimeError) when the CUDA path cannot run.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "cf_math.h"
#include "cpu_kernels.h"
#include "cuda_kernels.h"
#include "errors.h"

namespace py = pybind11;

namespace {

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

[[noreturn]] void type_error(const std::string& msg) { throw py::type_error(msg); }
[[noreturn]] void value_error(const std::string& msg) { throw py::value_error(msg); }

std::string type_name(py::handle obj) { return py::str(py::type::of(obj).attr("__name__")); }
std::string repr_str(py::handle obj) { return py::repr(obj); }

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

// ---------------------------------------------------------------------------------------------
// Arrays
// ---------------------------------------------------------------------------------------------

enum class DT { F32, F16, U8, U32, Other };

constexpr int kNpyFloat = 11, kNpyHalf = 23, kNpyUByte = 2, kNpyUInt = 6;  // numpy type numbers
constexpr int kNpyAligned = 0x0100;                                          // NPY_ARRAY_ALIGNED

const char* dt_name(DT d) {
  switch (d) {
    case DT::F32: return "float32";
    case DT::F16: return "float16";
    case DT::U8: return "uint8";
    case DT::U32: return "uint32";
    default: return "?";
  }
}

// A validated numpy array argument.
struct Arr {
  py::array a;
  std::string fn, name;
  DT dt = DT::Other;
  std::vector<int64_t> shape;

  std::string what() const { return fn + ": " + name; }
  std::string dtype_str() const { return py::str(a.dtype()); }
  int64_t numel() const { return static_cast<int64_t>(a.size()); }
  int64_t batch() const { return shape.at(0); }
  int64_t per_sample() const {
    int64_t n = 1;
    for (size_t i = 1; i < shape.size(); ++i) n *= shape[i];
    return n;
  }
  template <class T>
  T* ptr() const { return static_cast<T*>(const_cast<void*>(a.data())); }
};

DT classify(const py::dtype& d) {
  const char order = d.byteorder();
  const bool native = order == '=' || order == '|' || order == (PY_BIG_ENDIAN ? '>' : '<');
  if (!native) return DT::Other;
  switch (d.num()) {
    case kNpyFloat: return DT::F32;
    case kNpyHalf: return DT::F16;
    case kNpyUByte: return DT::U8;
    case kNpyUInt: return DT::U32;
    default: return DT::Other;
  }
}

std::string allowed_str(std::initializer_list<DT> allowed) {
  std::string s;
  size_t i = 0;
  for (DT d : allowed) s += (i++ == 0 ? "" : (i == allowed.size() ? " or " : ", ")) + std::string(dt_name(d));
  return s;
}

// obj must be a C-contiguous, aligned numpy array (writeable if `writeable`) of an allowed dtype.
Arr array_arg(py::handle obj, const std::string& fn, const char* name, std::initializer_list<DT> allowed,
              bool writeable = false) {
  Arr r;
  r.fn = fn;
  r.name = name;
  if (!py::isinstance<py::array>(obj)) {
    type_error(r.what() + " must be a numpy.ndarray of dtype " + allowed_str(allowed) + ", got " + type_name(obj));
  }
  r.a = py::reinterpret_borrow<py::array>(obj);
  r.shape.assign(r.a.shape(), r.a.shape() + r.a.ndim());
  r.dt = classify(r.a.dtype());
  bool ok = false;
  for (DT d : allowed) ok = ok || d == r.dt;
  if (!ok) {
    type_error(r.what() + " must have dtype " + allowed_str(allowed) + ", got " + r.dtype_str() +
               " with shape " + shape_str(r.shape));
  }
  if (!(r.a.flags() & py::array::c_style)) {
    std::vector<int64_t> strides(r.a.strides(), r.a.strides() + r.a.ndim());
    value_error(r.what() + " must be C-contiguous (use numpy.ascontiguousarray), got strides " + shape_str(strides) +
                " for shape " + shape_str(r.shape));
  }
  if (!(r.a.flags() & kNpyAligned)) value_error(r.what() + " must be aligned to its dtype (got an unaligned view)");
  if (writeable && !r.a.writeable()) value_error(r.what() + " must be writeable, got a read-only array");
  return r;
}

void require_batched(const Arr& x) {
  if (x.shape.empty()) value_error(x.what() + " must have shape [B, ...] (at least 1 dimension), got a 0-d array");
}

void require_same_shape(const Arr& x, const Arr& ref) {
  if (x.shape != ref.shape) {
    value_error(x.what() + " must have the same shape as " + ref.name + " " + shape_str(ref.shape) + ", got " +
                shape_str(x.shape));
  }
}

void require_same_dtype(const Arr& x, const Arr& ref) {
  if (x.dt != ref.dt) {
    type_error(x.what() + " must have the same dtype as " + ref.name + " (" + dt_name(ref.dt) + "), got " +
               x.dtype_str());
  }
}

// An output may be the very same buffer as an input (in-place); any other overlap is an error.
void require_no_partial_overlap(const Arr& out, const Arr& in, bool exact_alias_ok) {
  const auto lo_o = reinterpret_cast<uintptr_t>(out.a.data()), hi_o = lo_o + out.a.nbytes();
  const auto lo_i = reinterpret_cast<uintptr_t>(in.a.data()), hi_i = lo_i + in.a.nbytes();
  if (out.a.nbytes() == 0 || in.a.nbytes() == 0 || hi_o <= lo_i || hi_i <= lo_o) return;
  if (exact_alias_ok && lo_o == lo_i && hi_o == hi_i) return;
  value_error(out.what() + " overlaps the memory of " + in.name +
              (exact_alias_ok ? "; it may be the same array (in-place) but must not partially overlap it"
                              : "; use a separate output array"));
}

// Image batch [B, 1, H, W] (or [B, H, W] when allow_3d).
void require_image_batch(const Arr& x, bool allow_3d) {
  const bool ok4 = x.shape.size() == 4 && x.shape[1] == 1;
  const bool ok3 = allow_3d && x.shape.size() == 3;
  if (!ok4 && !ok3) {
    value_error(x.what() + " must have shape " + (allow_3d ? "[B, H, W] or " : "") + "[B, 1, H, W], got " +
                shape_str(x.shape));
  }
}

// ---------------------------------------------------------------------------------------------
// Scalars
// ---------------------------------------------------------------------------------------------

uint64_t u64_arg(py::handle obj, const std::string& fn, const char* name, uint64_t max_value = UINT64_MAX) {
  const std::string what = fn + ": " + name;
  if (PyFloat_Check(obj.ptr()) || !PyIndex_Check(obj.ptr())) {
    type_error(what + " must be an int, got " + type_name(obj));
  }
  auto idx = py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr()));
  if (!idx) throw py::error_already_set();
  const std::string range = max_value == UINT64_MAX ? "[0, 2**64)" : "[0, " + std::to_string(max_value) + "]";
  if (PyObject_RichCompareBool(idx.ptr(), py::int_(0).ptr(), Py_LT) == 1) {
    value_error(what + " must be in " + range + ", got " + repr_str(idx));
  }
  const unsigned long long v = PyLong_AsUnsignedLongLong(idx.ptr());
  if (PyErr_Occurred()) {
    PyErr_Clear();
    value_error(what + " must be in " + range + ", got " + repr_str(idx));
  }
  if (v > max_value) value_error(what + " must be in " + range + ", got " + repr_str(idx));
  return v;
}

int64_t size_arg(py::handle obj, const std::string& fn, const char* name) {
  return static_cast<int64_t>(u64_arg(obj, fn, name, static_cast<uint64_t>(INT64_MAX)));
}

float sigma_arg(py::handle obj, const std::string& fn) {
  const double d = PyFloat_AsDouble(obj.ptr());
  if (d == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    type_error(fn + ": sigma must be a real number, got " + type_name(obj));
  }
  // Only the conversion is checked here (a finite double beyond float32's range has no float value); that sigma is
  // finite and >= 0 is the meaning of the value, checked once at the Python boundary (cheartflow_sdk.kernels).
  if (std::isfinite(d) && std::fabs(d) > static_cast<double>(std::numeric_limits<float>::max())) {
    value_error(fn + ": sigma must be representable in float32, got " + repr_str(obj));
  }
  return static_cast<float>(d);
}

// The global sample index first_sample + b is a 32-bit Philox counter word.
uint64_t first_sample_arg(py::handle obj, const std::string& fn, int64_t batch) {
  const uint64_t first = u64_arg(obj, fn, "first_sample", 0xFFFFFFFFull);
  if (first + static_cast<uint64_t>(batch) > 0x100000000ull) {
    value_error(fn + ": first_sample + B must be <= 2**32 (the sample index is a 32-bit counter word), got first_sample=" +
                std::to_string(first) + ", B=" + std::to_string(batch));
  }
  return first;
}

// Philox block indices are 32-bit counter words.
void require_block_range(const std::string& fn, int64_t per_sample) {
  if ((per_sample + 3) / 4 > 0x100000000ll) {
    value_error(fn + ": at most 2**34 elements per sample are supported, got " + std::to_string(per_sample));
  }
}

// t: float32 [B] (the kernel reads B values). That each is in [0, 1] is checked at the Python boundary.
Arr t_arg(py::handle obj, const std::string& fn, int64_t batch) {
  Arr t = array_arg(obj, fn, "t", {DT::F32});
  if (t.shape.size() != 1 || t.shape[0] != batch) {
    value_error(fn + ": t must have shape (B,) = (" + std::to_string(batch) + ",) (one value per sample), got " +
                shape_str(t.shape));
  }
  return t;
}

// ---------------------------------------------------------------------------------------------
// CPU functions
// ---------------------------------------------------------------------------------------------

py::tuple philox4x32_10(py::handle counter, py::handle key) {
  const std::string fn = "philox4x32_10";
  auto words = [&](py::handle seq, const char* name, size_t n) {
    if (!py::isinstance<py::sequence>(seq) || py::len(seq) != n) {
      type_error(fn + ": " + name + " must be a sequence of " + std::to_string(n) + " ints in [0, 2**32), got " +
                 repr_str(seq));
    }
    std::vector<uint32_t> out;
    for (size_t i = 0; i < n; ++i) {
      out.push_back(static_cast<uint32_t>(u64_arg(seq[py::int_(i)], fn, name, 0xFFFFFFFFull)));
    }
    return out;
  };
  const auto c = words(counter, "counter", 4);
  const auto k = words(key, "key", 2);
  const cf::U32x4 r = cf::philox4x32_10(cf::U32x4{{c[0], c[1], c[2], c[3]}}, k[0], k[1]);
  return py::make_tuple(r.v[0], r.v[1], r.v[2], r.v[3]);
}

void normal_fill(py::handle out_obj, py::handle seed_obj, py::handle offset_obj, py::handle first_obj) {
  const std::string fn = "normal_fill";
  Arr out = array_arg(out_obj, fn, "out", {DT::F32}, true);
  require_batched(out);
  require_block_range(fn, out.per_sample());
  const uint64_t seed = u64_arg(seed_obj, fn, "seed");
  const uint64_t offset = u64_arg(offset_obj, fn, "offset");
  const uint64_t first = first_sample_arg(first_obj, fn, out.batch());
  py::gil_scoped_release nogil;
  cf::cpu::normal_fill(out.ptr<float>(), out.batch(), out.per_sample(), seed, offset, first);
}

struct RenoiseArgs {
  Arr x0, x1, out;
};

RenoiseArgs renoise_arrays(const std::string& fn, py::handle x0_obj, py::handle x1_obj, py::handle out_obj) {
  RenoiseArgs r;
  r.x0 = array_arg(x0_obj, fn, "x0_hat", {DT::F32, DT::F16});
  require_batched(r.x0);
  require_block_range(fn, r.x0.per_sample());
  r.x1 = array_arg(x1_obj, fn, "x1", {DT::F32, DT::F16});
  require_same_dtype(r.x1, r.x0);
  require_same_shape(r.x1, r.x0);
  r.out = array_arg(out_obj, fn, "out", {DT::F32, DT::F16}, true);
  require_same_dtype(r.out, r.x0);
  require_same_shape(r.out, r.x0);
  require_no_partial_overlap(r.out, r.x0, true);
  require_no_partial_overlap(r.out, r.x1, true);
  return r;
}

void run_renoise(const RenoiseArgs& r, const Arr& t, float sigma, const float* eps, uint64_t seed, uint64_t offset,
                 uint64_t first) {
  py::gil_scoped_release nogil;
  if (r.x0.dt == DT::F32) {
    cf::cpu::renoise(r.x0.ptr<float>(), r.x1.ptr<float>(), t.ptr<float>(), sigma, eps, seed, offset, first,
                     r.out.ptr<float>(), r.x0.batch(), r.x0.per_sample());
  } else {
    cf::cpu::renoise(r.x0.ptr<uint16_t>(), r.x1.ptr<uint16_t>(), t.ptr<float>(), sigma, eps, seed, offset, first,
                     r.out.ptr<uint16_t>(), r.x0.batch(), r.x0.per_sample());
  }
}

void renoise(py::handle x0, py::handle x1, py::handle t_obj, py::handle sigma_obj, py::handle seed_obj,
             py::handle offset_obj, py::handle first_obj, py::handle out_obj) {
  const std::string fn = "renoise";
  const RenoiseArgs r = renoise_arrays(fn, x0, x1, out_obj);
  const Arr t = t_arg(t_obj, fn, r.x0.batch());
  const float sigma = sigma_arg(sigma_obj, fn);
  const uint64_t seed = u64_arg(seed_obj, fn, "seed");
  const uint64_t offset = u64_arg(offset_obj, fn, "offset");
  const uint64_t first = first_sample_arg(first_obj, fn, r.x0.batch());
  run_renoise(r, t, sigma, nullptr, seed, offset, first);
}

void renoise_with_noise(py::handle x0, py::handle x1, py::handle t_obj, py::handle sigma_obj, py::handle eps_obj,
                        py::handle out_obj) {
  const std::string fn = "renoise_with_noise";
  const RenoiseArgs r = renoise_arrays(fn, x0, x1, out_obj);
  const Arr t = t_arg(t_obj, fn, r.x0.batch());
  const float sigma = sigma_arg(sigma_obj, fn);
  const Arr eps = array_arg(eps_obj, fn, "eps", {DT::F32});
  require_same_shape(eps, r.x0);
  require_no_partial_overlap(r.out, eps, true);
  run_renoise(r, t, sigma, eps.ptr<float>(), 0, 0, 0);
}

void preprocess(py::handle src_obj, py::handle out_obj) {
  const std::string fn = "preprocess";
  const Arr src = array_arg(src_obj, fn, "src", {DT::U8, DT::F32});
  require_image_batch(src, true);
  const Arr out = array_arg(out_obj, fn, "out", {DT::F32, DT::F16}, true);
  require_image_batch(out, false);
  if (out.numel() != src.numel() || out.shape[0] != src.shape[0] || out.shape[2] != src.shape[src.shape.size() - 2] ||
      out.shape[3] != src.shape.back()) {
    value_error(fn + ": out must have shape [B, 1, H, W] matching src " + shape_str(src.shape) + ", got " +
                shape_str(out.shape));
  }
  require_no_partial_overlap(out, src, src.dt == out.dt);
  const int64_t n = src.numel();
  py::gil_scoped_release nogil;
  if (src.dt == DT::U8 && out.dt == DT::F32) cf::cpu::preprocess(src.ptr<uint8_t>(), out.ptr<float>(), n);
  if (src.dt == DT::U8 && out.dt == DT::F16) cf::cpu::preprocess(src.ptr<uint8_t>(), out.ptr<uint16_t>(), n);
  if (src.dt == DT::F32 && out.dt == DT::F32) cf::cpu::preprocess(src.ptr<float>(), out.ptr<float>(), n);
  if (src.dt == DT::F32 && out.dt == DT::F16) cf::cpu::preprocess(src.ptr<float>(), out.ptr<uint16_t>(), n);
}

void postprocess(py::handle src_obj, py::handle out_obj) {
  const std::string fn = "postprocess";
  const Arr src = array_arg(src_obj, fn, "src", {DT::F32, DT::F16});
  require_image_batch(src, false);
  const Arr out = array_arg(out_obj, fn, "out", {DT::F32, DT::U8}, true);
  require_same_shape(out, src);
  require_no_partial_overlap(out, src, src.dt == out.dt);
  const int64_t n = src.numel();
  py::gil_scoped_release nogil;
  if (src.dt == DT::F32 && out.dt == DT::F32) cf::cpu::postprocess(src.ptr<float>(), out.ptr<float>(), n);
  if (src.dt == DT::F32 && out.dt == DT::U8) cf::cpu::postprocess(src.ptr<float>(), out.ptr<uint8_t>(), n);
  if (src.dt == DT::F16 && out.dt == DT::F32) cf::cpu::postprocess(src.ptr<uint16_t>(), out.ptr<float>(), n);
  if (src.dt == DT::F16 && out.dt == DT::U8) cf::cpu::postprocess(src.ptr<uint16_t>(), out.ptr<uint8_t>(), n);
}

void set_num_threads(py::handle n_obj) {
  const uint64_t n = u64_arg(n_obj, "set_num_threads", "n", 4096);
  if (n < 1) value_error("set_num_threads: n must be >= 1, got 0");
  cf::cpu::set_num_threads(static_cast<int>(n));
}

py::tuple box_muller_parts(py::handle bits_obj) {
  const std::string fn = "_box_muller_parts";
  const Arr bits = array_arg(bits_obj, fn, "bits", {DT::U32});
  const auto n = static_cast<py::ssize_t>(bits.numel());
  py::array_t<float> u(n), log_u(n), s(n), c(n);
  float *pu = u.mutable_data(), *pl = log_u.mutable_data(), *ps = s.mutable_data(), *pc = c.mutable_data();
  {
    py::gil_scoped_release nogil;
    cf::cpu::box_muller_parts(bits.ptr<uint32_t>(), pu, pl, ps, pc, n);
  }
  return py::make_tuple(u, log_u, s, c);
}

// ---------------------------------------------------------------------------------------------
// CUDA functions (device pointers as ints)
// ---------------------------------------------------------------------------------------------

cf::cuda::DType cuda_dtype_arg(py::handle obj, const std::string& fn, const char* name,
                               std::initializer_list<DT> allowed) {
  const std::string s = py::str(obj);  // accepts "float32" or numpy.dtype("float32")
  for (DT d : allowed) {
    if (s == dt_name(d)) return d == DT::F32 ? cf::cuda::DType::F32 : d == DT::F16 ? cf::cuda::DType::F16 : cf::cuda::DType::U8;
  }
  value_error(fn + ": " + name + " must be one of " + allowed_str(allowed) + ", got " + repr_str(obj));
}

uintptr_t ptr_arg(py::handle obj, const std::string& fn, const char* name) {
  return static_cast<uintptr_t>(u64_arg(obj, fn, name));
}

void normal_fill_cuda(py::handle out, py::handle batch, py::handle per_sample, py::handle seed, py::handle offset,
                      py::handle first_sample, py::handle stream) {
  const std::string fn = "normal_fill_cuda";
  cf::cuda::require_available(fn);
  const int64_t b = size_arg(batch, fn, "batch"), n = size_arg(per_sample, fn, "per_sample");
  require_block_range(fn, n);
  const uintptr_t out_p = ptr_arg(out, fn, "out_ptr");
  const uint64_t s = u64_arg(seed, fn, "seed"), o = u64_arg(offset, fn, "offset");
  const uint64_t first = first_sample_arg(first_sample, fn, b);
  const uintptr_t st = ptr_arg(stream, fn, "stream");
  py::gil_scoped_release nogil;
  cf::cuda::normal_fill(out_p, b, n, s, o, first, st);
}

// t is either a device pointer (int) or a host float32 numpy array of shape [batch].
struct CudaT {
  bool on_host = false;
  uintptr_t dev = 0;
  Arr host;
  const float* host_ptr() const { return on_host ? host.ptr<float>() : nullptr; }
};

CudaT cuda_t_arg(py::handle obj, const std::string& fn, int64_t batch) {
  CudaT t;
  t.on_host = py::isinstance<py::array>(obj);
  if (t.on_host) {
    t.host = t_arg(obj, fn, batch);
  } else {
    t.dev = ptr_arg(obj, fn, "t_ptr (a device pointer int or a host float32 numpy array)");
  }
  return t;
}

void renoise_cuda(py::handle x0, py::handle x1, py::handle t, py::handle out, py::handle batch, py::handle per_sample,
                  py::handle dtype, py::handle sigma, py::handle seed, py::handle offset, py::handle first_sample,
                  py::handle stream) {
  const std::string fn = "renoise_cuda";
  cf::cuda::require_available(fn);
  const int64_t b = size_arg(batch, fn, "batch"), n = size_arg(per_sample, fn, "per_sample");
  require_block_range(fn, n);
  const auto dt = cuda_dtype_arg(dtype, fn, "dtype", {DT::F32, DT::F16});
  const CudaT tt = cuda_t_arg(t, fn, b);
  const uintptr_t x0_p = ptr_arg(x0, fn, "x0_ptr"), x1_p = ptr_arg(x1, fn, "x1_ptr"), out_p = ptr_arg(out, fn, "out_ptr");
  const float sg = sigma_arg(sigma, fn);
  const uint64_t s = u64_arg(seed, fn, "seed"), o = u64_arg(offset, fn, "offset");
  const uint64_t first = first_sample_arg(first_sample, fn, b);
  const uintptr_t st = ptr_arg(stream, fn, "stream");
  py::gil_scoped_release nogil;
  cf::cuda::renoise(x0_p, x1_p, tt.dev, tt.host_ptr(), 0, out_p, b, n, dt, sg, s, o, first, st);
}

void renoise_with_noise_cuda(py::handle x0, py::handle x1, py::handle t, py::handle eps, py::handle out,
                             py::handle batch, py::handle per_sample, py::handle dtype, py::handle sigma,
                             py::handle stream) {
  const std::string fn = "renoise_with_noise_cuda";
  cf::cuda::require_available(fn);
  const int64_t b = size_arg(batch, fn, "batch"), n = size_arg(per_sample, fn, "per_sample");
  const auto dt = cuda_dtype_arg(dtype, fn, "dtype", {DT::F32, DT::F16});
  const CudaT tt = cuda_t_arg(t, fn, b);
  const uintptr_t x0_p = ptr_arg(x0, fn, "x0_ptr"), x1_p = ptr_arg(x1, fn, "x1_ptr");
  const uintptr_t eps_p = ptr_arg(eps, fn, "eps_ptr"), out_p = ptr_arg(out, fn, "out_ptr");
  const float sg = sigma_arg(sigma, fn);
  const uintptr_t st = ptr_arg(stream, fn, "stream");
  if (eps_p == 0 && b * n > 0) value_error(fn + ": eps_ptr must not be null");
  py::gil_scoped_release nogil;
  cf::cuda::renoise(x0_p, x1_p, tt.dev, tt.host_ptr(), eps_p, out_p, b, n, dt, sg, 0, 0, 0, st);
}

// Graph-safe variant: t_ptr (device float32 [batch]) and params_ptr (device uint64[2] = {seed, first_sample})
// are read by the kernel when it runs; offset is fixed at launch (or graph capture).
void renoise_cuda_params(py::handle x0, py::handle x1, py::handle t, py::handle params, py::handle out,
                         py::handle batch, py::handle per_sample, py::handle dtype, py::handle sigma, py::handle offset,
                         py::handle stream) {
  const std::string fn = "renoise_cuda_params";
  cf::cuda::require_available(fn);
  const int64_t b = size_arg(batch, fn, "batch"), n = size_arg(per_sample, fn, "per_sample");
  require_block_range(fn, n);
  if (static_cast<uint64_t>(b) > 0x100000000ull) {
    value_error(fn + ": batch must be <= 2**32 (the sample index is a 32-bit counter word), got " + std::to_string(b));
  }
  const auto dt = cuda_dtype_arg(dtype, fn, "dtype", {DT::F32, DT::F16});
  if (py::isinstance<py::array>(t)) type_error(fn + ": t_ptr must be a device pointer (int), got a host numpy array");
  const uintptr_t x0_p = ptr_arg(x0, fn, "x0_ptr"), x1_p = ptr_arg(x1, fn, "x1_ptr"), t_p = ptr_arg(t, fn, "t_ptr");
  const uintptr_t params_p = ptr_arg(params, fn, "params_ptr"), out_p = ptr_arg(out, fn, "out_ptr");
  const float sg = sigma_arg(sigma, fn);
  const uint64_t o = u64_arg(offset, fn, "offset");
  const uintptr_t st = ptr_arg(stream, fn, "stream");
  py::gil_scoped_release nogil;
  cf::cuda::renoise_params(x0_p, x1_p, t_p, params_p, out_p, b, n, dt, sg, o, st);
}

void preprocess_cuda(py::handle src, py::handle src_dtype, py::handle out, py::handle out_dtype, py::handle numel,
                     py::handle stream) {
  const std::string fn = "preprocess_cuda";
  cf::cuda::require_available(fn);
  const auto sd = cuda_dtype_arg(src_dtype, fn, "src_dtype", {DT::U8, DT::F32});
  const auto od = cuda_dtype_arg(out_dtype, fn, "out_dtype", {DT::F32, DT::F16});
  const uintptr_t src_p = ptr_arg(src, fn, "src_ptr"), out_p = ptr_arg(out, fn, "out_ptr");
  const int64_t n = size_arg(numel, fn, "numel");
  const uintptr_t st = ptr_arg(stream, fn, "stream");
  py::gil_scoped_release nogil;
  cf::cuda::preprocess(src_p, sd, out_p, od, n, st);
}

void postprocess_cuda(py::handle src, py::handle src_dtype, py::handle out, py::handle out_dtype, py::handle numel,
                      py::handle stream) {
  const std::string fn = "postprocess_cuda";
  cf::cuda::require_available(fn);
  const auto sd = cuda_dtype_arg(src_dtype, fn, "src_dtype", {DT::F32, DT::F16});
  const auto od = cuda_dtype_arg(out_dtype, fn, "out_dtype", {DT::F32, DT::U8});
  const uintptr_t src_p = ptr_arg(src, fn, "src_ptr"), out_p = ptr_arg(out, fn, "out_ptr");
  const int64_t n = size_arg(numel, fn, "numel");
  const uintptr_t st = ptr_arg(stream, fn, "stream");
  py::gil_scoped_release nogil;
  cf::cuda::postprocess(src_p, sd, out_p, od, n, st);
}

// cf::NativeUnavailable -> cheartflow_sdk.errors.NativeUnavailableError (RuntimeError as a fallback).
void translate_native_unavailable(std::exception_ptr p) {
  try {
    if (p) std::rethrow_exception(p);
  } catch (const cf::NativeUnavailable& e) {
    PyObject* cls = PyExc_RuntimeError;
    py::object holder;
    try {
      holder = py::module_::import("cheartflow_sdk.errors").attr("NativeUnavailableError");
      cls = holder.ptr();
    } catch (py::error_already_set&) {
      PyErr_Clear();
    }
    PyErr_SetString(cls, e.what());
  }
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "cheartflow-sdk native kernels (private; use cheartflow_sdk.kernels).";
  py::register_exception_translator(&translate_native_unavailable);
  using py::arg;

  m.def("philox4x32_10", &philox4x32_10, arg("counter"), arg("key"),
        "Philox4x32-10 of a counter (4 uint32 words) under a key (2 words); returns 4 words.");
  m.def("normal_fill", &normal_fill, arg("out"), arg("seed"), arg("offset"), arg("first_sample") = 0,
        "Fill float32 C-contiguous out [B, ...] with the counter-based standard normal noise.");
  m.def("renoise", &renoise, arg("x0_hat"), arg("x1"), arg("t"), arg("sigma"), arg("seed"), arg("offset"),
        arg("first_sample"), arg("out"),
        "out = (1-t)*x0_hat + t*x1 + t*(1-t)*sigma^2*eps with generated eps; out may alias x0_hat.");
  m.def("renoise_with_noise", &renoise_with_noise, arg("x0_hat"), arg("x1"), arg("t"), arg("sigma"), arg("eps"),
        arg("out"), "renoise with an explicit float32 noise array eps of the same shape.");
  m.def("preprocess", &preprocess, arg("src"), arg("out"),
        "Sketch uint8 [B,(1,)H,W] ((v-127.5)/127.5) or float32 [B,(1,)H,W] (2x-1) -> out float32/16 [B,1,H,W].");
  m.def("postprocess", &postprocess, arg("src"), arg("out"),
        "float32/16 [B,1,H,W] -> clamp((x+1)/2, 0, 1) float32, or uint8 round-half-even(255*that).");
  m.def("set_num_threads", &set_num_threads, arg("n"), "Number of CPU threads of the kernels (>= 1).");
  m.def("get_num_threads", &cf::cpu::get_num_threads, "Number of CPU threads of the kernels.");
  m.def("_use_f16c", [](py::object enable) { return cf::cpu::use_f16c(enable.is_none() ? -1 : (py::bool_(enable) ? 1 : 0)); },
        arg("enable") = py::none(),
        "Testing aid: set (True/False) or query (None) whether float16 renoise on the CPU uses F16C instructions "
        "(only where the CPU has them); returns the setting in effect. Results are identical either way.");
  m.def("_box_muller_parts", &box_muller_parts, arg("bits"),
        "Testing aid: (u, log(u), sin(2*pi*u), cos(2*pi*u)) float32 for raw uint32 Philox words.");

  m.def("cuda_compiled", &cf::cuda::compiled, "Whether the module was built with the CUDA kernels.");
  m.def("cuda_device_count", &cf::cuda::device_count, "Number of usable CUDA devices (0 without GPU or driver).");
  m.def("normal_fill_cuda", &normal_fill_cuda, arg("out_ptr"), arg("batch"), arg("per_sample"), arg("seed"),
        arg("offset"), arg("first_sample") = 0, arg("stream") = 0, "normal_fill on a device float32 buffer.");
  m.def("renoise_cuda", &renoise_cuda, arg("x0_ptr"), arg("x1_ptr"), arg("t_ptr"), arg("out_ptr"), arg("batch"),
        arg("per_sample"), arg("dtype"), arg("sigma"), arg("seed"), arg("offset"), arg("first_sample") = 0,
        arg("stream") = 0, "renoise on device buffers; t_ptr is a device float32 pointer or a host float32 array [batch].");
  m.def("renoise_with_noise_cuda", &renoise_with_noise_cuda, arg("x0_ptr"), arg("x1_ptr"), arg("t_ptr"), arg("eps_ptr"),
        arg("out_ptr"), arg("batch"), arg("per_sample"), arg("dtype"), arg("sigma"), arg("stream") = 0,
        "renoise_with_noise on device buffers (eps: device float32).");
  m.def("renoise_cuda_params", &renoise_cuda_params, arg("x0_ptr"), arg("x1_ptr"), arg("t_ptr"), arg("params_ptr"),
        arg("out_ptr"), arg("batch"), arg("per_sample"), arg("dtype"), arg("sigma"), arg("offset"), arg("stream") = 0,
        "CUDA-graph-safe renoise: t_ptr (device float32 [batch]) and params_ptr (device uint64[2] = {seed, "
        "first_sample}) are read at run time; offset is fixed at launch. Noise equals renoise_cuda's for the same values.");
  m.def("preprocess_cuda", &preprocess_cuda, arg("src_ptr"), arg("src_dtype"), arg("out_ptr"), arg("out_dtype"),
        arg("numel"), arg("stream") = 0, "preprocess on device buffers of numel elements.");
  m.def("postprocess_cuda", &postprocess_cuda, arg("src_ptr"), arg("src_dtype"), arg("out_ptr"), arg("out_dtype"),
        arg("numel"), arg("stream") = 0, "postprocess on device buffers of numel elements.");
}
