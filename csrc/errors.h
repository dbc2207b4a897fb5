// C++ exceptions shared by the kernels and the bindings.
#pragma once

#include <stdexcept>

namespace cf {

// Raised when the CUDA path cannot be used (not compiled in, no driver, no GPU);
// the bindings translate it to cheartflow_sdk.errors.NativeUnavailableError (a RuntimeError).
struct NativeUnavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace cf
