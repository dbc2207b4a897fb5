"""The one IO contract shared by export and the runtime backends."""

from __future__ import annotations

INPUT_X = "x"  # float32 [batch, 1, R, R], model range [-1, 1]
INPUT_T = "t"  # float32 [batch], bridge time in [0, 1]
OUTPUT = "x0_hat"  # float32 [batch, 1, R, R]
BATCH_AXIS = "batch"
BATCH_BUCKETS = (1, 8, 64, 256)  # batch sizes engines are tuned for (optimization profiles, graphs)
ONNX_OPSET = 17

# Keys of the metadata stored in every exported engine.
META_MODEL_CONFIG = "cheartflow.model_config"  # JSON of ModelConfig
META_SKETCH_KIND = "cheartflow.sketch_kind"
META_RESOLUTION = "cheartflow.resolution"
META_SIGMA = "cheartflow.sigma"
META_DEFAULT_SCHEDULE = "cheartflow.default_schedule"  # JSON list
META_SDK_VERSION = "cheartflow.sdk_version"
META_SOURCE_SHA256 = "cheartflow.source_sha256"  # hash of the source model.safetensors
META_PRECISION = "cheartflow.precision"


def dynamic_axes() -> dict[str, dict[int, str]]:
    """Dynamic batch axis of every input and output."""
    return {INPUT_X: {0: BATCH_AXIS}, INPUT_T: {0: BATCH_AXIS}, OUTPUT: {0: BATCH_AXIS}}
