"""Type stub of the private native module cheartflow_sdk._C (use cheartflow_sdk.kernels instead).

Host functions take numpy arrays that must be C-contiguous, aligned and of the exact dtype; they raise
TypeError (wrong type/dtype) or ValueError (shape, layout, value) naming the argument. The *_cuda
functions take device pointers as ints and a cudaStream_t as an int; they raise
cheartflow_sdk.errors.NativeUnavailableError (a RuntimeError) when CUDA is not compiled in or no GPU is usable,
ValueError for bad pointers (host memory, misaligned, null, on different GPUs, partial overlap) or a stream of
another GPU. Kernels run on the GPU that holds the pointers (the caller's current device is restored) and are
enqueued asynchronously on `stream` without synchronizing; all are safe under CUDA graph capture, except a host
numpy `t` (rejected while capturing: the upload would be frozen into the graph).
"""

import numpy as np
import numpy.typing as npt

def philox4x32_10(counter: tuple[int, int, int, int], key: tuple[int, int]) -> tuple[int, int, int, int]:
    """Philox4x32-10 (Random123) of a 4-word counter under a 2-word key."""

def normal_fill(out: npt.NDArray[np.float32], seed: int, offset: int, first_sample: int = 0) -> None:
    """Fill out [B, ...] with the counter-based standard normal noise of samples first_sample + b."""

def renoise(x0_hat: npt.NDArray[np.floating], x1: npt.NDArray[np.floating], t: npt.NDArray[np.float32],
            sigma: float, seed: int, offset: int, first_sample: int, out: npt.NDArray[np.floating]) -> None:
    """out = (1-t)*x0_hat + t*x1 + t*(1-t)*sigma^2*eps (float32 math, fp32/fp16 storage); out may be x0_hat."""

def renoise_with_noise(x0_hat: npt.NDArray[np.floating], x1: npt.NDArray[np.floating], t: npt.NDArray[np.float32],
                       sigma: float, eps: npt.NDArray[np.float32], out: npt.NDArray[np.floating]) -> None:
    """renoise with an explicit float32 noise array eps of x0_hat's shape."""

def preprocess(src: npt.NDArray[np.uint8] | npt.NDArray[np.float32], out: npt.NDArray[np.floating]) -> None:
    """uint8 [B,(1,)H,W] -> (v-127.5)/127.5, float32 -> 2x-1, into out float32/float16 [B,1,H,W]."""

def postprocess(src: npt.NDArray[np.floating], out: npt.NDArray[np.float32] | npt.NDArray[np.uint8]) -> None:
    """[B,1,H,W] -> clamp((x+1)*0.5, 0, 1) (NaN -> 0) as float32, or round-half-even(255*that) as uint8."""

def set_num_threads(n: int) -> None:
    """Number of CPU threads used by the kernels (>= 1); results do not depend on it."""

def get_num_threads() -> int:
    """Number of CPU threads used by the kernels."""

def _use_f16c(enable: bool | None = None) -> bool:
    """Testing aid: set (True/False) or query (None) whether float16 renoise on the CPU uses F16C instructions
    (only where the CPU has them); returns the setting in effect. Results are bit-identical either way."""

def _box_muller_parts(
    bits: npt.NDArray[np.uint32],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Testing aid: (u, log(u), sin(2*pi*u), cos(2*pi*u)) for raw 1-D uint32 Philox words."""

def cuda_compiled() -> bool:
    """Whether the module was built with the CUDA kernels."""

def cuda_device_count() -> int:
    """Number of usable CUDA devices; 0 without a GPU or driver (never raises)."""

def normal_fill_cuda(out_ptr: int, batch: int, per_sample: int, seed: int, offset: int, first_sample: int = 0,
                     stream: int = 0) -> None:
    """normal_fill into a device float32 buffer of batch * per_sample elements."""

def renoise_cuda(x0_ptr: int, x1_ptr: int, t_ptr: int | npt.NDArray[np.float32], out_ptr: int, batch: int,
                 per_sample: int, dtype: str, sigma: float, seed: int, offset: int, first_sample: int = 0,
                 stream: int = 0) -> None:
    """renoise on device buffers of dtype "float32"/"float16"; t_ptr: device float32 pointer or host float32 [batch]."""

def renoise_with_noise_cuda(x0_ptr: int, x1_ptr: int, t_ptr: int | npt.NDArray[np.float32], eps_ptr: int, out_ptr: int,
                            batch: int, per_sample: int, dtype: str, sigma: float, stream: int = 0) -> None:
    """renoise_with_noise on device buffers (eps: device float32)."""

def renoise_cuda_params(x0_ptr: int, x1_ptr: int, t_ptr: int, params_ptr: int, out_ptr: int, batch: int,
                        per_sample: int, dtype: str, sigma: float, offset: int, stream: int = 0) -> None:
    """CUDA-graph-safe renoise: t_ptr (device float32 [batch]) and params_ptr (device uint64[2] = {seed,
    first_sample}) are read by the kernel at run time; offset and sigma are fixed at launch (graph capture).
    The noise equals renoise_cuda's for the same values (first_sample + batch <= 2**32 is the caller's contract)."""

def preprocess_cuda(src_ptr: int, src_dtype: str, out_ptr: int, out_dtype: str, numel: int, stream: int = 0) -> None:
    """preprocess of numel elements: src "uint8"/"float32" -> out "float32"/"float16"."""

def postprocess_cuda(src_ptr: int, src_dtype: str, out_ptr: int, out_dtype: str, numel: int, stream: int = 0) -> None:
    """postprocess of numel elements: src "float32"/"float16" -> out "float32"/"uint8"."""
