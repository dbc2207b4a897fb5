"""Evaluate sketch-to-image methods on a SliceSet: the paper's Table 1 metrics plus weight-free ones.

A *method* is any callable ``fn(sketches) -> images`` with sketches float32 ``[B,1,S,S]`` in
``[0, 1]`` (the SDK's sketch form) and images float32 ``[B,1,S,S]`` in ``[0, 1]`` - a
``Pipeline`` via :func:`pipeline_method`, a pix2pix/iDDPM baseline, or a test double.

Per method and sketch kind (:meth:`Evaluator.evaluate`):

- ``ssim``, ``psnr``: per slice on ``[0, 1]`` images against the real slice (SSIM: Gaussian window,
  sigma 1.5, data range 1), averaged per patient, then over patients (each patient weighs the same);
- ``seg_dice``: mean foreground Dice between the segmenter's labels of the synthesized image and the
  labels of the real slice the sketch came from (anatomical faithfulness), averaged the same way;
- ``frechet_seg``: Frechet distance between Gaussians fitted to the segmenter's bottleneck features of
  the real and the synthesized images (realism, weight-free stand-in for FID);
- ``fid`` / ``lpips`` when Inception / LPIPS weight files are given (None otherwise).

Rows (:attr:`EvalResult.row`) are flat dicts ready for ``results.json``. Needs torch for the
segmenter and the Inception/LPIPS networks; SSIM/PSNR alone need numpy only.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data.acdc import SliceSet
from ..errors import InvalidInputError
from .metrics.frechet import FrechetReference
from .metrics.image import psnr, ssim, to_unit_range
from .segmentation.dice import mean_foreground_dice
from .synthesis_cache import SynthesisCache, fingerprint_files

log = logging.getLogger(__name__)

SynthesisFn = Callable[[np.ndarray], np.ndarray]
DEFAULT_T1 = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # two-step re-noise times of the t_1 sweep
METRIC_KEYS = ("ssim", "psnr", "seg_dice", "frechet_seg", "fid", "lpips")  # the metric columns of every row
_RANGE_SLACK = 0.05  # synthesized values outside [-slack, 1 + slack] are an error (wrong range), inside are clipped


def patient_means(values: np.ndarray, patients: Sequence[str]) -> dict[str, float]:
    """Mean of ``values`` per patient (NaN entries skipped; NaN for a patient with none), in first-seen order."""
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (len(patients),):
        raise InvalidInputError(f"patient_means expects one value per slice: {v.shape} values for {len(patients)} patients entries")
    order: dict[str, list[int]] = {}
    for i, p in enumerate(patients):
        order.setdefault(p, []).append(i)
    out = {}
    for p, idx in order.items():
        vals = v[idx]
        vals = vals[~np.isnan(vals)]
        out[p] = float(vals.mean()) if len(vals) else float("nan")
    return out


def patient_average(values: np.ndarray, patients: Sequence[str]) -> tuple[float, float]:
    """(mean, std) over patients of the per-patient means (patients without a value are left out)."""
    means = np.array([m for m in patient_means(values, patients).values() if not np.isnan(m)])
    if len(means) == 0:
        return float("nan"), float("nan")
    if np.all(np.isposinf(means)):
        return float("inf"), 0.0
    with np.errstate(invalid="ignore"):
        return float(means.mean()), float(means.std())


def check_synthesized(images: Any, batch: int, size: int, who: str) -> np.ndarray:
    """A method's output as float32 ``[batch,1,size,size]`` in [0, 1]; out-of-range beyond a small slack is an error."""
    if hasattr(images, "detach"):  # a torch tensor
        images = images.detach().cpu().numpy()
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.shape != (batch, 1, size, size) or not np.issubdtype(arr.dtype, np.floating):
        raise InvalidInputError(f"{who}: expected float images [{batch}, 1, {size}, {size}] in [0, 1], got {arr.dtype} {np.shape(images)}")
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"{who}: synthesized images contain NaN or infinite values")
    if arr.size and (arr.min() < -_RANGE_SLACK or arr.max() > 1 + _RANGE_SLACK):
        raise InvalidInputError(
            f"{who}: expected images in [0, 1], got {arr.min():.3g}..{arr.max():.3g} (convert [-1, 1] outputs with (x + 1) / 2)"
        )
    return np.clip(arr, 0.0, 1.0).astype(np.float32, copy=False)


def run_method(fn: SynthesisFn, sketches: np.ndarray, batch_size: int | None = None, who: str = "method") -> np.ndarray:
    """Call ``fn`` on ``sketches`` (all at once, or in consecutive batches of ``batch_size``) and return the
    checked images ``[N,1,S,S]`` in [0, 1]."""
    if batch_size is None:
        batch_size = max(1, len(sketches))
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive int or None, got {batch_size!r}")
    size = sketches.shape[-1]
    outs = [check_synthesized(fn(sketches[i:i + batch_size]), len(sketches[i:i + batch_size]), size, who)
            for i in range(0, len(sketches), batch_size)]
    return np.concatenate(outs) if outs else np.zeros((0, 1, size, size), np.float32)


def pipeline_method(pipe: Any, steps: int = 1, schedule: Sequence[float] | None = None, seed: int = 0,
                    batch_size: int = 64) -> SynthesisFn:
    """A :class:`~cheartflow_sdk.pipeline.Pipeline` as a method (``steps``, ``schedule``, ``seed`` fixed).

    The pipeline keys its noise by the sample's index in the request, so call the method with all
    sketches at once (the Evaluator does by default) for results independent of batching.
    """

    def fn(sketches: np.ndarray) -> np.ndarray:
        return pipe.synthesize(sketches, steps=steps, schedule=schedule, seed=seed, batch_size=batch_size)

    return fn


def pipeline_cache_key(pipe: Any, steps: int = 1, schedule: Sequence[float] | None = None, seed: int = 0) -> str:
    """The :class:`~cheartflow_sdk.research.synthesis_cache.SynthesisCache` key of ``pipeline_method(pipe, steps, schedule, seed)``:
    the model files' fingerprint, backend, device and sampling settings."""
    from ..sampling import NOISE_SCHEME

    sched = None if schedule is None else [round(float(t), 6) for t in np.ravel(schedule)]
    noise = f"|noise={NOISE_SCHEME}" if int(steps) > 1 else ""  # one-step sampling draws no noise
    return (f"cheartflow|{fingerprint_files([pipe.source])}|{pipe.backend}|{getattr(pipe.encoder, 'device', '')}"
            f"|steps={int(steps)}|schedule={sched}|seed={int(seed)}{noise}")


@dataclass
class Method:
    """A named method for :func:`evaluate_methods` / the report."""

    name: str  # e.g. "cHeartFlow 1-step", "pix2pix", "iDDPM"
    sketch: str  # sketch kind it takes: "edges" or "labels"
    nfe: int  # network evaluations per image
    fn: SynthesisFn  # sketches [B,1,S,S] in [0,1] -> images [B,1,S,S] in [0,1]
    extra: dict[str, Any] = field(default_factory=dict)  # more row fields (e.g. {"t1": 0.5, "seed": 0})
    cache_key: str | None = None  # names everything that changes its images (see Evaluator's cache); None: never cached


@dataclass
class EvalResult:
    """One method on one split: the row plus the per-slice and per-patient values behind it."""

    row: dict[str, Any]  # flat, JSON-ready (method, sketch, nfe, split, metrics, counts)
    per_slice: dict[str, np.ndarray]  # metric -> [N] (ssim, psnr, seg_dice, lpips when measured)
    per_patient: dict[str, dict[str, float]]  # metric -> {patient: mean}
    samples: np.ndarray  # synthesized images [K,1,S,S] in [0,1] at Evaluator.sample_indices


class Evaluator:
    """Real slices, their sketches and the real-image features, computed once and shared by all methods.

    segmenter: a :class:`cheartflow_sdk.research.segmentation.Segmenter` (None: no seg_dice / frechet_seg);
    inception_weights / lpips_weights: weight files (see :mod:`cheartflow_sdk.research.metrics.inception` and
    :mod:`~cheartflow_sdk.research.metrics.lpips`; None: no fid / lpips); batch_size: of the metric networks;
    method_batch_size: sketches per call of a method (None: all at once, so methods that key noise by
    the sample's index in the request, like Pipeline, give batching-independent images); n_samples:
    images kept per method for the sample grid, spread over patients; cache: a
    :class:`~cheartflow_sdk.research.synthesis_cache.SynthesisCache` (or its folder) that keeps and reuses the
    images of methods evaluated with a ``cache_key``.
    """

    def __init__(self, slices: SliceSet, *, segmenter: Any = None, inception_weights: str | os.PathLike | None = None,
                 lpips_weights: str | os.PathLike | None = None, device: str = "cpu", batch_size: int = 64,
                 method_batch_size: int | None = None, split: str = "test", n_samples: int = 6,
                 cache: SynthesisCache | str | os.PathLike | None = None):
        if len(slices) < 2:
            raise InvalidInputError(f"evaluation needs at least 2 slices, got {len(slices)}")
        self.slices, self.split, self.batch_size, self.method_batch_size = slices, split, batch_size, method_batch_size
        self.size = slices.images.shape[-1]
        self.real01 = to_unit_range(slices.images)
        self.segmenter = segmenter
        if segmenter is not None and segmenter.config.resolution != self.size:
            raise InvalidInputError(f"the segmenter works at {segmenter.config.resolution}px but the slices are {self.size}px")
        self.inception = self.lpips = None
        if inception_weights is not None:
            from .metrics.inception import load_inception

            self.inception = load_inception(inception_weights, device=_torch_device(device))
        if lpips_weights is not None:
            from .metrics.lpips import load_lpips

            self.lpips = load_lpips(lpips_weights, device=_torch_device(device))
        self._sketches: dict[str, np.ndarray] = {}
        self._real_seg: tuple[np.ndarray, np.ndarray] | None = None
        self._frechet_seg: FrechetReference | None = None
        self._real_inception: np.ndarray | None = None
        self._frechet_inception: FrechetReference | None = None
        self.sample_indices = _spread_indices(slices.patients, n_samples)
        self.cache = cache if cache is None or isinstance(cache, SynthesisCache) else SynthesisCache(cache)

    @property
    def patients(self) -> list[str]:
        return list(self.slices.patients)

    def sketches(self, kind: str) -> np.ndarray:
        """Sketches of ``kind`` of the real slices, float32 ``[N,1,S,S]`` in [0, 1] (cached)."""
        if kind not in self._sketches:
            from ..sketch import make_sketch

            self._sketches[kind] = make_sketch(kind, images=self.slices.images, labels=self.slices.labels)
        return self._sketches[kind]

    def real_segmentation(self) -> tuple[np.ndarray, np.ndarray]:
        """(labels, bottleneck features) of the real images (cached); needs a segmenter."""
        if self.segmenter is None:
            raise InvalidInputError("no segmenter was given to the Evaluator")
        if self._real_seg is None:
            self._real_seg = self.segmenter.run(self.real01 * 2 - 1, self.batch_size)
        return self._real_seg

    def real_inception_features(self) -> np.ndarray:
        """Inception pool features of the real images (cached); needs inception weights."""
        if self.inception is None:
            raise InvalidInputError("no inception_weights were given to the Evaluator")
        if self._real_inception is None:
            from .metrics.inception import inception_features

            self._real_inception = inception_features(self.inception, self.real01)
        return self._real_inception

    def _base_row(self, method: str, sketch: str | None, nfe: int) -> dict[str, Any]:
        return {"method": method, "sketch": sketch, "nfe": int(nfe), "split": self.split, "n_slices": len(self.slices),
                "n_patients": len(set(self.slices.patients)), **{k: None for k in METRIC_KEYS}}

    def reference_row(self) -> dict[str, Any]:
        """The real images scored like a method: seg_dice is the segmenter's own accuracy (the ceiling)."""
        row = self._base_row("real images (reference)", None, 0)
        if self.segmenter is not None:
            labels, _ = self.real_segmentation()
            row["seg_dice"], row["seg_dice_patient_std"] = patient_average(
                mean_foreground_dice(labels, self.slices.labels), self.patients)
        return row

    def evaluate(self, fn: SynthesisFn, method: str, sketch: str, nfe: int, cache_key: str | None = None,
                 **extra: Any) -> EvalResult:
        """Run ``fn`` on the sketches of kind ``sketch`` and score its images (see the module doc).

        With a cache and a ``cache_key``, images stored under that key for these sketches are scored instead
        of running ``fn`` (the row's ``synth_seconds`` is then the stored time and ``synth_cached`` is true).
        """
        sketches = self.sketches(sketch)

        def synthesize() -> tuple[np.ndarray, float]:
            start = time.perf_counter()
            images = run_method(fn, sketches, self.method_batch_size, who=method)
            return images, time.perf_counter() - start

        use_cache = self.cache is not None and cache_key is not None
        if use_cache:  # methods that key noise by batch position give other images when called in other chunks
            key = f"{cache_key}|method_batch_size={self.method_batch_size}"
            images, elapsed, cached = self.cache.get_or_run(key, sketches, synthesize)
        else:
            images, elapsed = synthesize()
        result = self.evaluate_images(images, method, sketch, nfe, **extra)
        result.row["synth_seconds"] = round(elapsed, 3)
        if use_cache:
            result.row["synth_cached"] = cached
        return result

    def evaluate_images(self, images: np.ndarray, method: str, sketch: str | None, nfe: int, **extra: Any) -> EvalResult:
        """Score already synthesized images ``[N,1,S,S]`` in [0, 1] (one per slice, in slice order)."""
        images = check_synthesized(images, len(self.slices), self.size, method)
        row = self._base_row(method, sketch, nfe)
        per_slice: dict[str, np.ndarray] = {
            "ssim": np.concatenate([ssim(images[i:i + 256], self.real01[i:i + 256]) for i in range(0, len(images), 256)]),
            "psnr": psnr(images, self.real01),
        }
        if self.segmenter is not None:
            if self._frechet_seg is None:
                self._frechet_seg = FrechetReference(self.real_segmentation()[1])
            labels, feats = self.segmenter.run(images * 2 - 1, self.batch_size)
            per_slice["seg_dice"] = mean_foreground_dice(labels, self.slices.labels)
            row["frechet_seg"] = self._frechet_seg.distance(feats)
        if self.inception is not None:
            from .metrics.inception import inception_features

            if self._frechet_inception is None:
                self._frechet_inception = FrechetReference(self.real_inception_features())
            row["fid"] = self._frechet_inception.distance(inception_features(self.inception, images))
        if self.lpips is not None:
            from .metrics.lpips import lpips_distance

            per_slice["lpips"] = lpips_distance(self.lpips, images, self.real01, self.batch_size)
        per_patient = {k: patient_means(v, self.patients) for k, v in per_slice.items()}
        for k, v in per_slice.items():
            row[k], row[f"{k}_patient_std"] = patient_average(v, self.patients)
            with np.errstate(invalid="ignore"):
                row[f"{k}_slice_mean"] = float(np.nanmean(v)) if np.any(~np.isnan(v)) else float("nan")
        row.update(extra)
        log.info("%s (%s, NFE %d): %s", method, sketch, nfe,
                 ", ".join(f"{k} {row[k]:.4g}" for k in METRIC_KEYS if isinstance(row[k], float)))
        return EvalResult(row, per_slice, per_patient, images[self.sample_indices].copy())


def evaluate_methods(evaluator: Evaluator, methods: Sequence[Method]) -> list[EvalResult]:
    """Evaluate each method in order."""
    return [evaluator.evaluate(m.fn, m.name, m.sketch, m.nfe, cache_key=m.cache_key, **m.extra) for m in methods]


def sweep_t1(evaluator: Evaluator, make_fn: Callable[[float], SynthesisFn], sketch: str,
             t1_values: Sequence[float] = DEFAULT_T1, method: str = "cHeartFlow 2-step", nfe: int = 2,
             make_cache_key: Callable[[float], str] | None = None, **extra: Any) -> list[EvalResult]:
    """The faithfulness/realism curve: two-step sampling at each re-noise time ``t_1`` (rows carry ``t1``).

    ``make_fn(t1)`` returns the method for that ``t_1``, e.g. ``lambda t1: pipeline_method(pipe, 2, (t1,))``;
    ``make_cache_key(t1)``, when given, its key in the evaluator's cache.
    """
    out = []
    for t1 in t1_values:
        t1 = float(t1)
        if not 0.0 < t1 < 1.0:
            raise InvalidInputError(f"t_1 values must lie in (0, 1), got {t1}")
        key = make_cache_key(t1) if make_cache_key is not None else None
        out.append(evaluator.evaluate(make_fn(t1), method, sketch, nfe, cache_key=key, t1=t1, **extra))
    return out


def json_safe(value: Any) -> Any:
    """Rows as strict JSON values: NaN -> null, +-inf -> "inf"/"-inf", numpy scalars and arrays -> Python."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value


def rows_to_json(rows: Sequence[dict[str, Any]]) -> str:
    """The ``results.json`` text of a list of rows (strict JSON, see :func:`json_safe`)."""
    return json.dumps(json_safe(list(rows)), indent=1, allow_nan=False) + "\n"


def per_patient_indices(patients: Sequence[str], k: int) -> np.ndarray:
    """Indices of ``k`` slices per patient, evenly spread over each patient's slices (all when it has <= k).

    Used to score costly methods (hundreds of network evaluations per image) on a fixed, patient-balanced
    subset; the result is sorted, so the subset keeps the slice order.
    """
    if int(k) < 1:
        raise InvalidInputError(f"slices per patient must be >= 1, got {k}")
    picks: list[int] = []
    for idx in _indices_by_patient(patients):
        n = len(idx)
        picks += idx if n <= k else [idx[int((j + 0.5) * n / k)] for j in range(int(k))]
    return np.array(sorted(picks), dtype=np.int64)


def _spread_indices(patients: Sequence[str], n: int) -> np.ndarray:
    """``n`` slice indices from different patients where possible (the middle slice of evenly spaced patients)."""
    groups = _indices_by_patient(patients)
    n = max(0, min(int(n), len(patients)))
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n <= len(groups):
        picks = [groups[int(j)][len(groups[int(j)]) // 2] for j in np.linspace(0, len(groups) - 1, n).round()]
        if len(set(picks)) == n:
            return np.array(picks, dtype=np.int64)
    return np.linspace(0, len(patients) - 1, n).round().astype(np.int64)


def _indices_by_patient(patients: Sequence[str]) -> list[list[int]]:
    """The slice indices of each patient, patients in order of first appearance."""
    order: dict[str, list[int]] = {}
    for i, p in enumerate(patients):
        order.setdefault(p, []).append(i)
    return list(order.values())


def _torch_device(device: str) -> str:
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
