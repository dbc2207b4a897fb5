"""Quality report in the style of the paper's Table 1, on ACDC ``test``, for both sketch kinds.

Writes into ``--out`` (default: this folder):

- ``table.md``: per sketch kind, one row per method (method, NFE, Frechet-seg, SSIM, PSNR,
  seg-Dice, and FID/LPIPS when their weight files are given), the real images as a reference
  row, the t_1 sweep, notes on methods left out, and the provenance (device, date, versions, command);
- ``results.json``: a list of rows, each with ``method``, ``sketch``, ``nfe``, ``split`` and the metric
  values (``ssim``, ``psnr``, ``seg_dice``, ``frechet_seg``, ``fid``, ``lpips``; null when not
  measured, ``"inf"`` for an infinite PSNR), plus counts and per-patient spreads; sweep rows have
  ``"sweep": "t1"`` and ``t1``;
- ``grid_<sketch>.png``: sketch | real | pix2pix | iDDPM | cHeartFlow 1-step | 2-step (methods present);
- ``t1_curve.png``: the faithfulness/realism curve of two-step sampling over ``t_1``
  (SSIM and seg-Dice against Frechet-seg, one line per sketch kind, points labelled with ``t_1``).

    python benchmarks/quality/report.py --data ../shared/data/acdc --segmenter runs/segmenter \\
        --model edges=runs/edges --model labels=runs/labels \\
        --baseline runs/pix2pix_edges --baseline runs/iddpm_edges:200 --baseline runs/iddpm_edges:1000 \\
        [--inception-weights pt_inception-2015-12-05-6726825d.pth] [--lpips-weights lpips_alex.pth] \\
        [--cache runs/quality-cache]

With ``--cache DIR`` every method's synthesized images are kept in DIR (keyed by the weights' bytes,
steps, schedule, seed, backend, device and the input sketches) and reused by the next run: a rerun
that adds a baseline synthesizes only that one, and a run stopped halfway resumes.

A cHeartFlow model that is not given falls back to the bundled default; methods whose models are
missing (or whose sketch kind or resolution does not match) are left out with a note. Baselines are
loaded with ``cheartflow_sdk.research.baselines.load_baseline`` when that module is installed; any other
method plugs in as a callable ``sketches [B,1,S,S] in [0,1] -> images [B,1,S,S] in [0,1]`` through
:func:`run_benchmark` (``extra_methods``).
"""

from __future__ import annotations

import argparse
import datetime
import logging
import math
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("cheartflow.quality")

HERE = Path(__file__).resolve().parent
SKETCH_TITLES = {"edges": "Edge sketches (Canny)", "labels": "Label sketches (label maps)"}
# (row key, column title, higher is better, format)
COLUMNS = (
    ("frechet_seg", "Frechet-seg ↓", False, "{:.2f}"),
    ("ssim", "SSIM ↑", True, "{:.4f}"),
    ("psnr", "PSNR ↑", True, "{:.2f}"),
    ("seg_dice", "seg-Dice ↑", True, "{:.4f}"),
    ("fid", "FID ↓", False, "{:.1f}"),
    ("lpips", "LPIPS ↓", False, "{:.4f}"),
)
OPTIONAL_COLUMNS = ("fid", "lpips")  # shown only when some row has them
BASELINE_NAMES = {"pix2pix": "pix2pix", "iddpm": "iDDPM"}
_CURVE_COLORS = {"edges": (180, 90, 20), "labels": (20, 120, 230)}  # BGR
_OTHER_COLOR = (60, 160, 60)


# --------------------------------------------------------------------------- values


def _number(value: Any) -> float | None:
    if isinstance(value, str) and value in ("inf", "-inf"):
        return float(value)
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and not math.isnan(float(value)):
        return float(value)
    return None


def _fmt(value: Any, fmt: str) -> str:
    v = _number(value)
    if v is None:
        return "–"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    return fmt.format(v)


# --------------------------------------------------------------------------- table


def _is_sweep(row: dict[str, Any]) -> bool:
    return row.get("sweep") == "t1"


def _is_reference(row: dict[str, Any]) -> bool:
    return int(row.get("nfe") or 0) == 0


def format_table(rows: Sequence[dict[str, Any]], notes: Sequence[str] = (), provenance: dict[str, Any] | None = None,
                 title: str = "cHeartFlow quality (Table 1 style)") -> str:
    """The markdown report of ``rows`` (method rows, reference rows and t_1-sweep rows)."""
    rows = [dict(r) for r in rows]
    cols = [c for c in COLUMNS if c[0] not in OPTIONAL_COLUMNS or any(_number(r.get(c[0])) is not None for r in rows)]
    split = next((r.get("split") for r in rows if r.get("split")), "test")
    lines = [f"# {title}", ""]
    if provenance:
        lines += [f"- {k}: {v if not isinstance(v, dict) else ', '.join(f'{a} {b}' for a, b in v.items())}"
                  for k, v in provenance.items()]
        lines.append("")
    lines += [f"ACDC `{split}` split. SSIM (Gaussian window, sigma 1.5, data range 1) and PSNR on [0, 1] images, per slice, "
              "averaged per patient and then over patients; seg-Dice: mean foreground Dice (RV, MYO, LV) between the "
              "evaluation segmenter's labels of each synthesized image and the labels of its input; Frechet-seg: Frechet "
              "distance between the segmenter's bottleneck features of real and synthesized images. Best value per "
              "column in bold.", ""]
    main = [r for r in rows if not _is_sweep(r) and not r.get("subset")]
    subset = [r for r in rows if not _is_sweep(r) and r.get("subset")]
    kinds = [k for k in dict.fromkeys(r.get("sketch") for r in main + subset) if k is not None]
    references = [r for r in main if r.get("sketch") is None]
    for kind in kinds:
        section = [r for r in main if r.get("sketch") == kind]
        lines += [f"## {SKETCH_TITLES.get(kind, kind)}", ""]
        if section:
            lines += _markdown_rows(section, references, cols) + [""]
        sub_section = [r for r in subset if r.get("sketch") == kind]
        if sub_section:
            first = sub_section[0]
            lines += [f"### All methods on the same subset: {first.get('subset')}, {first.get('n_slices')} slices "
                      f"of {first.get('n_patients')} patients", ""]
            lines += _markdown_rows(sub_section, [r for r in subset if r.get("sketch") is None], cols) + [""]
    if not kinds and references:
        lines += _markdown_rows([], references, cols) + [""]
    sweep = [r for r in rows if _is_sweep(r)]
    if sweep:
        lines += ["## Faithfulness/realism trade-off over the two-step t_1", "",
                  "| Sketch | t_1 | " + " | ".join(c[1] for c in cols) + " |",
                  "|---|---:|" + "---:|" * len(cols)]
        for r in sorted(sweep, key=lambda r: (str(r.get("sketch")), float(r.get("t1") or 0))):
            lines.append(f"| {r.get('sketch')} | {_fmt(r.get('t1'), '{:.2f}')} | "
                         + " | ".join(_fmt(r.get(k), f) for k, _, _, f in cols) + " |")
        lines.append("")
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def _markdown_rows(section: list[dict[str, Any]], references: list[dict[str, Any]], cols: list[tuple]) -> list[str]:
    out = ["| Method | NFE | " + " | ".join(c[1] for c in cols) + " |", "|---|---:|" + "---:|" * len(cols)]
    methods = [r for r in section if not _is_reference(r)]
    best: dict[str, float] = {}
    for key, _, higher, _ in cols:
        vals = [v for v in (_number(r.get(key)) for r in methods) if v is not None]
        if len(vals) > 1:
            best[key] = max(vals) if higher else min(vals)
    for r in methods + [r for r in section if _is_reference(r)] + references:
        cells = []
        for key, _, _, fmt in cols:
            text = _fmt(r.get(key), fmt)
            v = _number(r.get(key))
            if not _is_reference(r) and key in best and v is not None and v == best[key]:
                text = f"**{text}**"
            cells.append(text)
        nfe = "–" if _is_reference(r) else str(r.get("nfe"))
        out.append(f"| {r.get('method')} | {nfe} | " + " | ".join(cells) + " |")
    return out


# --------------------------------------------------------------------------- files


def write_results_json(path: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    """``results.json``: the list of rows as strict JSON, written atomically."""
    from cheartflow_sdk.atomic import atomic_write_text
    from cheartflow_sdk.research.evaluation import rows_to_json

    return atomic_write_text(path, rows_to_json(rows))


def write_grid(path: str | Path, sketches: np.ndarray, real: np.ndarray, columns: Sequence[tuple[str, np.ndarray]]) -> Path:
    """The sample grid: one row per sample, columns sketch | real | each method (images in [0, 1])."""
    from cheartflow_sdk import io

    titles = ["sketch", "real"] + [t for t, _ in columns]
    return io.write_grid(path, [sketches, real] + [np.asarray(c) for _, c in columns], titles=titles)


def write_curve(path: str | Path, sweep_rows: Sequence[dict[str, Any]], x_key: str = "frechet_seg",
                y_keys: Sequence[str] = ("ssim", "seg_dice")) -> Path | None:
    """The faithfulness/realism curve as a color PNG drawn with OpenCV (no matplotlib needed).

    One panel per ``y_keys`` entry (faithfulness, up is better) against ``x_key`` (realism, left is
    better); one line per sketch kind, points labelled with their ``t_1``. Returns None (and writes
    nothing) when no row has both values.
    """
    import cv2

    from cheartflow_sdk.atomic import atomic_write_bytes

    panels = []
    for y_key in y_keys:
        series: dict[str, list[tuple[float, float, float]]] = {}
        for r in sweep_rows:
            x, y, t1 = _number(r.get(x_key)), _number(r.get(y_key)), _number(r.get("t1"))
            if x is not None and y is not None and t1 is not None and math.isfinite(x) and math.isfinite(y):
                series.setdefault(str(r.get("sketch")), []).append((t1, x, y))
        if series:
            panels.append(_curve_panel(series, x_key, y_key))
    if not panels:
        return None
    img = np.concatenate(panels, axis=1)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError(f"cv2 could not encode the curve PNG for {path}")
    return atomic_write_bytes(path, buf.tobytes())


def _curve_panel(series: dict[str, list[tuple[float, float, float]]], x_key: str, y_key: str,
                 w: int = 560, h: int = 420) -> np.ndarray:
    import cv2

    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 70, 20, 40, 50
    xs = [p[1] for pts in series.values() for p in pts]
    ys = [p[2] for pts in series.values() for p in pts]
    (x0, x1), (y0, y1) = _padded_range(xs), _padded_range(ys)

    def to_px(x: float, y: float) -> tuple[int, int]:
        px = left + (x - x0) / (x1 - x0) * (w - left - right)
        py = h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom)
        return int(round(px)), int(round(py))

    font, black, grey = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0), (200, 200, 200)
    for i in range(5):
        gx, gy = x0 + (x1 - x0) * i / 4, y0 + (y1 - y0) * i / 4
        px, _ = to_px(gx, y0)
        _, py = to_px(x0, gy)
        cv2.line(img, (px, top), (px, h - bottom), grey, 1)
        cv2.line(img, (left, py), (w - right, py), grey, 1)
        cv2.putText(img, f"{gx:.3g}", (px - 15, h - bottom + 18), font, 0.4, black, 1, cv2.LINE_AA)
        cv2.putText(img, f"{gy:.3g}", (5, py + 4), font, 0.4, black, 1, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (w - right, h - bottom), black, 1)
    cv2.putText(img, f"{x_key} (realism, lower is better)", (left, h - 12), font, 0.45, black, 1, cv2.LINE_AA)
    cv2.putText(img, f"{y_key} (faithfulness, higher is better) vs {x_key} over t_1", (10, 22), font, 0.45, black, 1, cv2.LINE_AA)
    for k, (kind, pts) in enumerate(sorted(series.items())):
        color = _CURVE_COLORS.get(kind, _OTHER_COLOR)
        pts = sorted(pts)
        px = [to_px(x, y) for _, x, y in pts]
        for a, b in zip(px, px[1:]):
            cv2.line(img, a, b, color, 2, cv2.LINE_AA)
        for (t1, _, _), p in zip(pts, px):
            cv2.circle(img, p, 4, color, -1, cv2.LINE_AA)
            cv2.putText(img, f"{t1:g}", (p[0] + 7, p[1] - 7), font, 0.42, color, 1, cv2.LINE_AA)
        cv2.putText(img, kind, (w - right - 90, top + 18 + 16 * k), font, 0.45, color, 1, cv2.LINE_AA)
    return img


def _padded_range(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    span = hi - lo if hi > lo else max(abs(hi), 1.0) * 0.1
    return lo - 0.08 * span, hi + 0.08 * span


def write_report(out_dir: str | Path, rows: Sequence[dict[str, Any]], grids: dict[str, tuple] | None = None,
                 notes: Sequence[str] = (), provenance: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write table.md, results.json, grid_<sketch>.png (from ``grids[kind] = (sketches, real, [(title, images)])``)
    and t1_curve.png (from the sweep rows) into ``out_dir``; returns {name: path} of the files written."""
    from cheartflow_sdk.atomic import atomic_write_text

    out = Path(out_dir)
    written: dict[str, Path] = {}
    notes = list(notes)
    for kind, (sketches, real, columns) in (grids or {}).items():
        written[f"grid_{kind}"] = write_grid(out / f"grid_{kind}.png", sketches, real, columns)
    sweep = [r for r in rows if _is_sweep(r)]
    if sweep:
        curve = write_curve(out / "t1_curve.png", sweep)
        if curve is None:
            notes.append("t1_curve.png not written: the t_1 sweep rows lack SSIM/seg-Dice or Frechet-seg values")
        else:
            written["t1_curve"] = curve
    written["results"] = write_results_json(out / "results.json", rows)
    written["table"] = atomic_write_text(out / "table.md", format_table(rows, notes, provenance))
    return written


# --------------------------------------------------------------------------- running the benchmark


def provenance(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Device, date, versions and command (as benchmarks/results.py records them for the speed benchmarks)."""
    info: dict[str, Any] = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if str(HERE.parent) not in sys.path:
        sys.path.insert(0, str(HERE.parent))  # benchmarks/results.py, shared with the speed benchmarks
    import results

    info["device"] = results.device_name()
    info["versions"] = results.versions()
    args = list(sys.argv[1:] if argv is None else argv)
    info["command"] = " ".join(shlex.quote(a) for a in ["python", "benchmarks/quality/report.py", *args])
    return info


def carried_rows(path: str | Path, kinds: Sequence[str], methods: Sequence[str] = tuple(BASELINE_NAMES.values())
                 ) -> tuple[list[dict[str, Any]], str]:
    """The rows of `methods` (the baselines) for `kinds` from an earlier report's results.json, each marked with
    ``carried_from``, and the note that says where they come from."""
    import json

    path = Path(path)
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"--carry-baselines: cannot read {path} as a report's results.json ({exc})") from exc
    rows = [{**r, "carried_from": str(path)} for r in earlier
            if r.get("method") in methods and r.get("sketch") in kinds and not _is_sweep(r)]
    note = (f"{', '.join(sorted({r['method'] for r in rows}))} rows are carried from {path} (an earlier run of this "
            "report on the same split, slices, seed and metrics): their weights are not in the repository, so they "
            "were not synthesized again and have no grid column")
    return rows, note


def budget_methods(path: str | Path) -> set[str]:
    """The budget-checkpoint method names ("cHeartFlow 1-step (37 min)") in an earlier report's results.json."""
    import json

    try:
        return {r["method"] for r in json.loads(Path(path).read_text()) if str(r.get("method", "")).endswith(" min)")}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"--carry-budget-rows: cannot read {path} as a report's results.json ({exc})") from exc


def _parse_kv(items: Sequence[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in ("edges", "labels"):
            raise SystemExit(f"{what} expects SKETCH=PATH with SKETCH edges or labels, got {item!r}")
        out[key] = value
    return out


def _parse_baseline(spec: str) -> tuple[str, int | None]:
    path, sep, steps = spec.rpartition(":")
    if sep and steps.isdigit() and path:
        return path, int(steps)
    return spec, None


def _load_slices(data: str, split: str, resolution: int, limit_patients: int | None):
    from cheartflow_sdk.data import PreprocessConfig, load_acdc, load_slices

    slices = load_slices(data) if data.endswith(".npz") else load_acdc(data, split, config=PreprocessConfig(size=resolution))
    if limit_patients:
        keep = set(list(dict.fromkeys(slices.patients))[:limit_patients])
        slices = slices.subset([i for i, p in enumerate(slices.patients) if p in keep])
    return slices


def _try(notes: list[str], what: str, load: Any) -> Any:
    from cheartflow_sdk.errors import CheartflowError

    try:
        return load()
    except (CheartflowError, FileNotFoundError, ImportError) as exc:
        notes.append(f"{what} left out: {exc}")
        log.warning("%s left out: %s", what, exc)
        return None


def run_benchmark(slices: Any, *, models: dict[str, Any], baselines: Sequence[Any] = (), segmenter: Any = None,
                  extra_methods: Sequence[Any] = (), sketches: Sequence[str] = ("edges", "labels"),
                  t1_values: Sequence[float] = (), seed: int = 0, inception_weights: str | None = None,
                  lpips_weights: str | None = None, device: str = "cpu", split: str = "test", n_samples: int = 6,
                  subset_per_patient: int | None = None, subset_min_nfe: int = 100,
                  notes: list[str] | None = None, cache: Any = None, steps: Sequence[int] = (1, 2),
                  budget_models: Sequence[tuple[str, str, Any]] = ()) -> tuple[list[dict[str, Any]], dict[str, tuple]]:
    """Evaluate every available method and return (rows, grids) for :func:`write_report`.

    models: sketch kind -> loaded Pipeline (missing kinds are left out); baselines: callables with
    ``kind``, ``sketch_kind`` and ``steps`` attributes (see :func:`baseline_method`); extra_methods:
    :class:`cheartflow_sdk.research.evaluation.Method` objects. Order per sketch kind: pix2pix, iDDPM (by NFE),
    extra methods, cHeartFlow one-step rows of ``budget_models`` ((sketch kind, budget label, Pipeline):
    checkpoints kept after a given training time, to compare at the baselines' budgets), cHeartFlow at
    each of ``steps`` (2 steps at the model's default t_1, k > 2 at evenly spaced t_k); then the t_1 sweep.

    subset_per_patient: when given, methods with NFE >= ``subset_min_nfe`` (iDDPM) are scored only on
    that many slices per patient, and every method of that sketch kind is scored on the same subset
    too (rows with ``subset``), so the costly methods (or rows carried from an earlier report) are
    compared on equal terms; the grid of a kind with costly methods comes from the subset, where all ran.

    cache: a :class:`cheartflow_sdk.research.synthesis_cache.SynthesisCache` (or folder) for the images of methods
    with a ``cache_key`` (the cHeartFlow ones always have one).
    """
    from cheartflow_sdk.research.evaluation import (
        Evaluator,
        Method,
        per_patient_indices,
        pipeline_cache_key,
        pipeline_method,
        sweep_t1,
    )

    notes = notes if notes is not None else []
    common = dict(segmenter=segmenter, inception_weights=inception_weights, lpips_weights=lpips_weights,
                  device=device, split=split, n_samples=n_samples, cache=cache)
    ev = Evaluator(slices, **common)
    sub_ev, subset_label = None, None
    rows: list[dict[str, Any]] = []
    sweep_rows: list[dict[str, Any]] = []
    grids: dict[str, tuple] = {}
    for kind in sketches:
        methods = sorted((m for m in baselines if getattr(m, "sketch", None) == kind),
                         key=lambda m: (m.name != "pix2pix", m.nfe))
        methods += [m for m in extra_methods if m.sketch == kind]
        methods += [Method(f"cHeartFlow 1-step ({label})", kind, 1, pipeline_method(p, 1, seed=seed),
                           {"seed": seed, "budget": label}, cache_key=pipeline_cache_key(p, 1, seed=seed))
                    for k, label, p in budget_models if k == kind]
        pipe = models.get(kind)
        if pipe is not None:
            for nfe in steps:
                sched = _schedule_for(pipe, nfe)
                extra = {"seed": seed, **({"t1": sched[0]} if nfe == 2 else {"schedule": list(sched)} if sched else {})}
                methods.append(Method(f"cHeartFlow {nfe}-step", kind, nfe, pipeline_method(pipe, nfe, sched or None, seed=seed),
                                      extra, cache_key=pipeline_cache_key(pipe, nfe, sched or None, seed=seed)))
        if not methods:
            notes.append(f"no method available for {kind} sketches")
            continue
        costly = [m for m in methods if subset_per_patient and m.nfe >= subset_min_nfe]
        full_rows, samples = _evaluate_methods(ev, [m for m in methods if m not in costly], kind, notes)
        rows += full_rows
        if samples:
            grids[kind] = (ev.sketches(kind)[ev.sample_indices], ev.real01[ev.sample_indices], samples)
        if subset_per_patient:
            if sub_ev is None:
                idx = per_patient_indices(slices.patients, subset_per_patient)
                sub_ev = Evaluator(slices.subset(idx), **common)
                subset_label = f"{subset_per_patient} per patient"
                notes.append(f"methods with NFE >= {subset_min_nfe} ran on {len(idx)} of {len(slices)} slices "
                             f"({subset_label}, evenly spread over each patient's slices); every method is scored "
                             "on that subset too, in its own table")
            sub_rows, sub_samples = _evaluate_methods(sub_ev, methods, kind, notes, subset=subset_label)
            rows += sub_rows
            if sub_samples and costly:
                grids[kind] = (sub_ev.sketches(kind)[sub_ev.sample_indices], sub_ev.real01[sub_ev.sample_indices],
                               sub_samples)
        if pipe is not None and t1_values:
            for res in sweep_t1(ev, lambda t1, p=pipe: pipeline_method(p, 2, (t1,), seed=seed), kind, t1_values,
                                make_cache_key=lambda t1, p=pipe: pipeline_cache_key(p, 2, (t1,), seed=seed),
                                sweep="t1", seed=seed):
                sweep_rows.append(res.row)
    if segmenter is not None:
        rows.append(ev.reference_row())
        if sub_ev is not None:
            rows.append({**sub_ev.reference_row(), "subset": subset_label})
    return rows + sweep_rows, grids


def _schedule_for(pipe: Any, steps: int) -> tuple[float, ...]:
    """The re-noise times of a `steps`-step row: the model's default t_1 for two steps, else evenly spaced."""
    if steps == 2:
        return tuple(pipe.config.default_schedule) or (0.5,)
    return tuple(round(float(t), 6) for t in np.linspace(1.0, 0.0, steps + 1)[1:-1])


def _evaluate_methods(ev: Any, methods: Sequence[Any], kind: str, notes: list[str],
                      subset: str | None = None) -> tuple[list[dict[str, Any]], list[tuple[str, np.ndarray]]]:
    """Score ``methods`` with ``ev``: their rows (tagged with ``subset`` when given) and grid columns."""
    rows, samples = [], []
    for m in methods:
        res = _try(notes, f"{m.name} ({kind})",
                   lambda m=m: ev.evaluate(m.fn, m.name, kind, m.nfe, cache_key=m.cache_key, **m.extra))
        if res is None:
            continue
        if subset is not None:
            res.row["subset"] = subset
        rows.append(res.row)
        short = m.name.replace("cHeartFlow ", "")
        samples.append((short if m.name.startswith("cHeartFlow") else f"{m.name} {m.nfe}" if m.nfe > 1 else m.name,
                        res.samples))
    return rows, samples


def baseline_method(synth: Any, steps: int | None = None, seed: int = 0, progress: bool = True) -> Any:
    """A loaded baseline (``cheartflow_sdk.research.baselines.load_baseline``) as an evaluation Method; its cache key
    fingerprints the run's config and weights when the synthesizer names its run folder (``source``).
    progress: show iDDPM's sampling steps as a progress bar (1000 steps take over half an hour on a CPU)."""
    from cheartflow_sdk.research.evaluation import Method
    from cheartflow_sdk.research.synthesis_cache import fingerprint_files

    kind = getattr(synth, "kind", "baseline")
    nfe = int(steps if steps is not None else getattr(synth, "default_steps", 1))

    def fn(sketches: np.ndarray) -> np.ndarray:
        return synth(sketches, steps=steps, seed=seed, progress=progress)

    source = getattr(synth, "source", None)
    key = None
    if source is not None:
        from cheartflow_sdk.research.baselines._base import CONFIG_FILENAME, MODEL_FILENAME

        files = fingerprint_files([Path(source) / CONFIG_FILENAME, Path(source) / MODEL_FILENAME])
        key = f"{kind}|{files}|{getattr(synth, 'device', '')}|amp={getattr(synth, 'amp', None)}|steps={nfe}|seed={seed}"
    return Method(BASELINE_NAMES.get(kind, kind), synth.sketch_kind, nfe, fn, {"seed": seed}, cache_key=key)


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Table-1-style quality report (see the module doc).")
    p.add_argument("--data", required=True, help="ACDC root (with splits.json) or a .npz from cf.data.save_slices")
    p.add_argument("--split", default="test")
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--model", action="append", default=[], metavar="SKETCH=PATH",
                   help="cHeartFlow model folder or .onnx per sketch kind (default: the bundled model)")
    p.add_argument("--baseline", action="append", default=[], metavar="RUN_DIR[:STEPS]",
                   help="baseline run folder (pix2pix or iDDPM; STEPS: iDDPM sampling steps, e.g. 200 or 1000)")
    p.add_argument("--segmenter", help="evaluation segmenter folder (default: the bundled one)")
    p.add_argument("--sketches", default="edges,labels", help="comma-separated sketch kinds")
    p.add_argument("--t1", default=",".join(f"{t:g}" for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)),
                   help="comma-separated two-step t_1 values of the sweep ('' to skip)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", default="1,2", help="comma-separated cHeartFlow step counts (rows), e.g. 1,2,4,8")
    p.add_argument("--carry-baselines", metavar="RESULTS_JSON",
                   help="take the pix2pix/iDDPM rows from an earlier report's results.json (when their weights are gone)")
    p.add_argument("--carry-budget-rows", metavar="RESULTS_JSON",
                   help="take the budget-checkpoint rows (cHeartFlow 1-step (N min)) from an earlier report's results.json "
                        "(when those checkpoints' run folders are gone)")
    p.add_argument("--budget-model", action="append", default=[], metavar="SKETCH:LABEL=PATH",
                   help="a cHeartFlow checkpoint kept after a training budget (e.g. edges:37 min=runs/edges/at-37min), "
                        "scored one-step beside the baselines trained for that long")
    p.add_argument("--inception-weights", help="pytorch-fid Inception weights (pt_inception-2015-12-05-6726825d.pth) for FID")
    p.add_argument("--lpips-weights", help="LPIPS AlexNet v0.1 state dict for LPIPS")
    p.add_argument("--device", default="auto")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime"))
    p.add_argument("--limit-patients", type=int, help="only the first N patients (quick runs)")
    p.add_argument("--samples", type=int, default=6, help="rows of the sample grids")
    p.add_argument("--subset-per-patient", type=int, metavar="K",
                   help="score methods with NFE >= --subset-min-nfe (iDDPM) on K slices per patient only, and every "
                        "method on that subset too (default: all slices)")
    p.add_argument("--subset-min-nfe", type=int, default=100, help="NFE from which --subset-per-patient applies")
    p.add_argument("--cache", metavar="DIR", help="keep every method's synthesized images in DIR and reuse them on "
                                                  "the next run (resume a stopped run; add a baseline cheaply)")
    p.add_argument("--out", default=str(HERE), help="output folder")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from cheartflow_sdk.pipeline import load_pipeline

    notes: list[str] = []
    kinds = [k for k in args.sketches.split(",") if k]
    model_paths = _parse_kv(args.model, "--model")
    slices = _load_slices(args.data, args.split, args.resolution, args.limit_patients)
    size = slices.images.shape[-1]
    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"

    def load_seg():
        from cheartflow_sdk.research.segmentation import load_segmenter

        return load_segmenter(args.segmenter, device=device)

    segmenter = _try(notes, "seg-Dice and Frechet-seg (no evaluation segmenter)", load_seg)
    models = {}
    for kind in kinds:
        pipe = _try(notes, f"cHeartFlow ({kind})",
                    lambda k=kind: load_pipeline(model_paths.get(k), backend=args.backend, device=device, sketch_kind=k))
        if pipe is None:
            continue
        if pipe.config.sketch_kind != kind or pipe.config.resolution != size:
            notes.append(f"cHeartFlow ({kind}) left out: {pipe.source} is a {pipe.config.sketch_kind} model at "
                         f"{pipe.config.resolution}px, the data is {kind} at {size}px")
            continue
        models[kind] = pipe
    budget_models = []
    for spec in args.budget_model:
        key, _, path = spec.partition("=")
        kind, _, label = key.partition(":")
        if kind not in ("edges", "labels") or not path:
            raise SystemExit(f"--budget-model expects SKETCH:LABEL=PATH with SKETCH edges or labels, got {spec!r}")
        pipe = _try(notes, f"cHeartFlow ({spec})",
                    lambda k=kind, path=path: load_pipeline(path, backend=args.backend, device=device, sketch_kind=k))
        if pipe is not None:
            budget_models.append((kind, label or path, pipe))
    baselines = []
    for spec in args.baseline:
        path, steps = _parse_baseline(spec)

        def load_b(path=path, steps=steps):
            from cheartflow_sdk.research.baselines import load_baseline

            return baseline_method(load_baseline(path, device=device), steps=steps, seed=args.seed)

        m = _try(notes, f"baseline {spec}", load_b)
        if m is not None:
            baselines.append(m)
    if not args.baseline and not args.carry_baselines:
        notes.append("pix2pix / iDDPM left out: no --baseline run folders given")
    t1_values = [float(t) for t in args.t1.split(",") if t.strip()]
    rows, grids = run_benchmark(slices, models=models, baselines=baselines, segmenter=segmenter, sketches=kinds,
                                t1_values=t1_values, seed=args.seed, inception_weights=args.inception_weights,
                                lpips_weights=args.lpips_weights, device=device, split=args.split,
                                n_samples=args.samples, subset_per_patient=args.subset_per_patient,
                                subset_min_nfe=args.subset_min_nfe, notes=notes, cache=args.cache,
                                steps=[int(k) for k in args.steps.split(",") if k.strip()], budget_models=budget_models)
    if args.carry_baselines:
        carried, note = carried_rows(args.carry_baselines, kinds)
        rows, notes = carried + rows, notes + [note]
    if args.carry_budget_rows:
        carried, note = carried_rows(args.carry_budget_rows, kinds, methods=budget_methods(args.carry_budget_rows))
        rows, notes = carried + rows, notes + [note]
    written = write_report(args.out, rows, grids, notes, provenance(argv))
    for name, path in written.items():
        log.info("wrote %s: %s", name, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
