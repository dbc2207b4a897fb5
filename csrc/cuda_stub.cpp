// Stand-in for cuda_kernels.cu in builds without CUDA: every launcher raises NativeUnavailable.
#include <string>

#include "cuda_kernels.h"
#include "errors.h"

namespace cf::cuda {

bool compiled() { return false; }
int device_count() noexcept { return 0; }

void require_available(const std::string& fn) {
  throw NativeUnavailable(fn + ": cheartflow_sdk._C was built without CUDA support "
                               "(rebuild with CUDA available and -DCHEARTFLOW_CUDA=ON)");
}

void normal_fill(uintptr_t, int64_t, int64_t, uint64_t, uint64_t, uint64_t, uintptr_t) {
  require_available("normal_fill_cuda");
}

void renoise(uintptr_t, uintptr_t, uintptr_t, const float*, uintptr_t, uintptr_t, int64_t, int64_t,
             DType, float, uint64_t, uint64_t, uint64_t, uintptr_t) {
  require_available("renoise_cuda");
}

void renoise_params(uintptr_t, uintptr_t, uintptr_t, uintptr_t, uintptr_t, int64_t, int64_t, DType, float, uint64_t,
                    uintptr_t) {
  require_available("renoise_cuda_params");
}

void preprocess(uintptr_t, DType, uintptr_t, DType, int64_t, uintptr_t) {
  require_available("preprocess_cuda");
}

void postprocess(uintptr_t, DType, uintptr_t, DType, int64_t, uintptr_t) {
  require_available("postprocess_cuda");
}

}  // namespace cf::cuda
