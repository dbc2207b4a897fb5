"""Inception-v3 pool features (2048-d) for FID, in plain torch, from a user-supplied weight file.

No weights ship with the SDK and none are downloaded. The weight file is a state dict in the
**pytorch-fid layout** (the de-facto standard for FID, ported from TensorFlow's FID Inception):
``pt_inception-2015-12-05-6726825d.pth`` from
https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth

Keys follow torchvision's ``Inception3`` module names, e.g. ``Conv2d_1a_3x3.conv.weight``
``[32, 3, 3, 3]``, ``Conv2d_1a_3x3.bn.{weight,bias,running_mean,running_var}``,
``Mixed_5b.branch1x1.conv.weight``, ..., ``Mixed_7c.branch_pool.bn.running_var``, and
``fc.weight`` ``[1008, 2048]`` / ``fc.bias`` (unused by the features). A torchvision
``inception_v3(weights="IMAGENET1K_V1").state_dict()`` (``fc.weight`` ``[1000, 2048]``,
``AuxLogits.*`` keys ignored) is accepted too and selects torchvision's pooling variant; its
features are *not* comparable with published FID numbers.

Input: images ``[B, 1 or 3, H, W]`` in ``[0, 1]``; one channel is repeated to three, the batch is
resized to 299x299 (bilinear, ``align_corners=False``) and scaled to ``[-1, 1]``, exactly as
pytorch-fid does. Output: the ``[B, 2048]`` global average pool after ``Mixed_7c``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ...errors import InvalidInputError
from ._weights import check_keys, read_state_dict

log = logging.getLogger(__name__)

FEATURE_DIM = 2048
INPUT_SIZE = 299
WHAT = "Inception-v3 FID weights"
EXPECTED = (
    "a torch state dict in the pytorch-fid layout (pt_inception-2015-12-05-6726825d.pth from "
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth; "
    "keys such as Conv2d_1a_3x3.conv.weight [32, 3, 3, 3] ... Mixed_7c.branch_pool.bn.running_var [192], fc.weight [1008, 2048]) "
    "or torchvision's inception_v3 state dict"
)


class BasicConv2d(nn.Module):
    """Conv (no bias) + BatchNorm (eps 0.001) + ReLU; keys ``conv.weight``, ``bn.*``."""

    def __init__(self, in_ch: int, out_ch: int, **kwargs: object):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, bias=False, **kwargs)  # type: ignore[arg-type]
        self.bn = nn.BatchNorm2d(out_ch, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: torch.Tensor, tf_pool: bool) -> torch.Tensor:
    # TensorFlow's average pool (the FID variant) leaves the zero padding out of the average.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=not tf_pool)


class InceptionA(nn.Module):
    def __init__(self, in_ch: int, pool_features: int, tf_pool: bool):
        super().__init__()
        self.tf_pool = tf_pool
        self.branch1x1 = BasicConv2d(in_ch, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_ch, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_ch, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool(x, self.tf_pool))
        return torch.cat([self.branch1x1(x), b5, b3, bp], 1)


class InceptionB(nn.Module):
    def __init__(self, in_ch: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_ch, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, in_ch: int, c7: int, tf_pool: bool):
        super().__init__()
        self.tf_pool = tf_pool
        self.branch1x1 = BasicConv2d(in_ch, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_ch, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_ch, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_ch, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            d = layer(d)
        bp = self.branch_pool(_avg_pool(x, self.tf_pool))
        return torch.cat([self.branch1x1(x), b7, d, bp], 1)


class InceptionD(nn.Module):
    def __init__(self, in_ch: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_ch, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_ch, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """``pool``: "avg" (torchvision), "tf_avg" (FID Mixed_7b) or "max" (FID Mixed_7c)."""

    def __init__(self, in_ch: int, pool: str):
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_ch, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_ch, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_ch, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        if self.pool == "max":  # the FID network's Mixed_7c (a quirk of the TF graph, kept for comparability)
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _avg_pool(x, self.pool == "tf_avg")
        return torch.cat([self.branch1x1(x), b3, d, self.branch_pool(pooled)], 1)


class InceptionV3Features(nn.Module):
    """Inception-v3 up to the 2048-d average pool. ``variant``: "fid" (pytorch-fid) or "torchvision"."""

    def __init__(self, variant: str = "fid"):
        super().__init__()
        if variant not in ("fid", "torchvision"):
            raise InvalidInputError(f"Inception variant must be 'fid' or 'torchvision', got {variant!r}")
        self.variant = variant
        tf = variant == "fid"
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, 32, tf)
        self.Mixed_5c = InceptionA(256, 64, tf)
        self.Mixed_5d = InceptionA(288, 64, tf)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128, tf)
        self.Mixed_6c = InceptionC(768, 160, tf)
        self.Mixed_6d = InceptionC(768, 160, tf)
        self.Mixed_6e = InceptionC(768, 192, tf)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, "tf_avg" if tf else "avg")
        self.Mixed_7c = InceptionE(2048, "max" if tf else "avg")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 1|3, H, W]`` in ``[0, 1]`` -> ``[B, 2048]``."""
        x = images.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        x = 2.0 * x - 1.0
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                     "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(self, name)(x)
        return x.mean(dim=(2, 3))


def _variant_of(state: dict[str, torch.Tensor], path: Path) -> str:
    fc = state.get("fc.weight")
    if fc is None or fc.ndim != 2:
        return "fid"
    if fc.shape[0] == 1008:
        return "fid"
    if fc.shape[0] == 1000:
        log.warning("%s holds torchvision's Inception-v3 (1000 classes): its features are not the standard FID "
                    "features; use pt_inception-2015-12-05-6726825d.pth for comparable numbers", path)
        return "torchvision"
    raise InvalidInputError(f"{WHAT} file {path}: fc.weight has shape {tuple(fc.shape)}; expected [1008, 2048] "
                            f"(pytorch-fid) or [1000, 2048] (torchvision)")


def load_inception(weights: str | os.PathLike | None, device: str | torch.device = "cpu") -> InceptionV3Features:
    """Build the feature extractor and load ``weights`` (see the module doc); eval mode, no gradients.

    Raises ModelNotAvailableError naming the file when it is missing, InvalidInputError when it
    cannot be read or does not match the architecture.
    """
    state = read_state_dict(weights, WHAT, EXPECTED)
    path = Path(str(weights))
    model = InceptionV3Features(_variant_of(state, path))
    own = model.state_dict()
    expected = {k: tuple(v.shape) for k, v in own.items() if not k.endswith("num_batches_tracked")}
    check_keys(state, expected, path, WHAT, EXPECTED)
    model.load_state_dict({k: state[k].float() for k in expected}, strict=False)
    return model.to(device).eval().requires_grad_(False)


@torch.no_grad()
def inception_features(model: InceptionV3Features, images: np.ndarray, batch_size: int = 50) -> np.ndarray:
    """Pool features float64 ``[N, 2048]`` of images ``[N, 1|3, H, W]`` (or ``[N, H, W]``) in ``[0, 1]``."""
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4 or arr.shape[1] not in (1, 3) or len(arr) == 0:
        raise InvalidInputError(f"inception_features expects images [N, 1|3, H, W] in [0, 1] with N >= 1, got {np.shape(images)}")
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError("inception_features: images contain NaN or infinite values")
    device = next(model.parameters()).device
    out = [model(torch.from_numpy(arr[i:i + batch_size]).to(device)).double().cpu().numpy()
           for i in range(0, len(arr), batch_size)]
    return np.concatenate(out)
