"""Batch synthesis on a Ray cluster (extra `[ray]`): sketch files -> Ray Dataset -> one pipeline per actor -> files.

    import ray, cheartflow_sdk as cf
    from cheartflow_sdk.ray_synth import synthesize_with_ray
    ray.init(address="auto")            # or "ray://head:10001"; without a call, a local Ray instance is started
    synthesize_with_ray("sketches/", "out/", model="runs/edges", steps=2, seed=0, num_actors=4)

Each input file is one row of the dataset; `map_batches` hands batches of files to a pool of actors, each of
which loads the model once (`load_pipeline`) and, per batch, reads the files, synthesizes and writes the
outputs. Reading, output names and formats, and the atomic writes are the local `cheartflow synth` path's own
functions (io's file reader, synthesis_outputs' output plan, io.write_pngs, medical_io.write_nifti), and each sketch's
noise is keyed by its seed and its content, so the files are the ones `cheartflow synth` writes for the same
inputs and seed, whichever actor made them. Outputs: PNG for image/.npy inputs, NIfTI (same geometry) for
NIfTI inputs ("auto", the local default), or "png" / "nifti" explicitly; DICOM output needs all the inputs
that are not volumes in one series, which a distributed run cannot assemble: use the local path for it.
The output folder must be visible to every worker at the same path (a shared filesystem on a cluster).
Existing outputs are refused per batch (as `overwrite=False` does locally), so when a batch fails, the
files of batches that finished before it are kept; the error is raised as the SDK error the actor hit.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ._optional import require
from . import errors as errors_module
from .errors import CheartflowError, InvalidInputError

log = logging.getLogger(__name__)

RAY_FORMATS = ("auto", "png", "nifti")


def list_inputs(inputs: str | Path | Sequence[str | Path]) -> tuple[list[Path], list[str], Path]:
    """(files, output stems, the input path the output checks compare with) of a folder, a file or a list of
    files: the files and stems the local path reads (hidden and unsupported files skipped, equal stems
    disambiguated as it does)."""
    from . import io

    if isinstance(inputs, (str, Path)):
        root = Path(inputs)
        if not root.exists():
            raise InvalidInputError(f"{root}: no such file or folder (expected a sketch file or a folder of them)")
        files = io._list_sketch_files(root) if root.is_dir() else [root]
        anchor = root
    else:
        files = [Path(f) for f in inputs]
        if not files:
            raise InvalidInputError("inputs: expected a folder, a file or a non-empty list of sketch files")
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise InvalidInputError(f"inputs: expected existing sketch files; not found: {missing[:5]}")
        anchor = files[0].parent
    return [f.resolve() for f in files], io._unique_stems(files), anchor.resolve()


class SynthesisActor:
    """One pipeline per Ray actor: the model is loaded once, then each batch of files is read, synthesized and
    written exactly as the local path does it."""

    def __init__(self, model: str | None, backend: str, device: str, sketch_kind: str | None, options: dict[str, Any],
                 threads: int | None = None):
        from .pipeline import load_pipeline

        self.pipe = load_pipeline(model, backend=backend, device=device, sketch_kind=sketch_kind, threads=threads)
        self.sketch_kind = sketch_kind
        self.opts = options
        log.info("ray actor loaded %r", self.pipe)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Read, synthesize and write a batch of files; an SDK error comes back as a row (Ray would wrap it)."""
        try:
            paths = self._run(batch)
        except CheartflowError as exc:
            return {"output": np.asarray([""], dtype=object), "error": np.asarray([f"{type(exc).__name__}\t{exc}"], dtype=object)}
        return {"output": np.asarray([str(p) for p in paths], dtype=object),
                "error": np.asarray([""] * len(paths), dtype=object)}

    def _run(self, batch: dict[str, np.ndarray]) -> list[Path]:
        from . import io
        from .medical_io import synthetic_description
        from .synthesis_outputs import plan_outputs, write_planned_outputs

        o = self.opts
        kind = self.pipe.config.sketch_kind
        items = [io._read_file(Path(str(f)), str(s), kind, o["drawing"], self.pipe.config.resolution if o["drawing"] else None)
                 for f, s in zip(batch["path"], batch["stem"])]
        out = Path(o["out"])
        plan, paths = plan_outputs(items, list(o["formats"]), out, Path(o["input"]))
        io.check_output_files(paths, overwrite=o["overwrite"])
        x = np.concatenate([i.sketches for i in items])
        images = self.pipe.synthesize(x, steps=o["steps"], schedule=o["schedule"], seed=o["seed"],
                                      batch_size=o["batch_size"], sketch_kind=self.sketch_kind,
                                      allow_unvalidated_steps=o["allow_unvalidated_steps"])
        desc = synthetic_description(Path(str(self.pipe.source)).name, o["steps"], o["seed"])
        write_planned_outputs(plan, images, out, desc, settings="")
        return paths


def synthesize_with_ray(inputs: str | Path | Sequence[str | Path], out: str | Path, model: str | Path | None = None,
                        *, backend: str = "auto", device: str = "cpu", steps: int = 1, schedule: Any = None,
                        seed: int = 0, sketch_kind: str | None = None, formats: Sequence[str] = ("auto",),
                        drawing: bool = False, batch_size: int = 16, files_per_batch: int = 8,
                        num_actors: int | None = None, cpus_per_actor: float = 1.0, overwrite: bool = False,
                        allow_unvalidated_steps: bool = False, address: str | None = None) -> list[Path]:
    """Synthesize every sketch of `inputs` (a folder, a file or a list of files) into `out` on Ray; returns the
    written paths (sorted). The images equal `cheartflow synth`'s for the same inputs, model and seed.

    num_actors: pipelines in parallel (default: the cluster's CPUs // cpus_per_actor); each takes
    `files_per_batch` files per call and runs the encoder in chunks of `batch_size`, on ceil(cpus_per_actor)
    engine threads. address: passed to
    `ray.init` when Ray is not initialized yet (None: start or join a local instance; "auto" or
    "ray://host:10001": an existing cluster). formats: "auto" (NIfTI for NIfTI inputs, PNG otherwise), "png",
    "nifti". The model path is resolved here; workers must see it (and `out`) at the same path.
    """
    ray = require("ray")
    require("ray.data")
    from . import io

    bad = [f for f in formats if f not in RAY_FORMATS]
    if bad or not formats:
        raise InvalidInputError(f"formats: Ray synthesis writes {RAY_FORMATS}, got {list(formats)} (DICOM series are "
                                "assembled from all inputs at once: use the local `cheartflow synth --format dicom`)")
    if isinstance(cpus_per_actor, bool) or not isinstance(cpus_per_actor, (int, float)) or not cpus_per_actor > 0:
        raise InvalidInputError(f"cpus_per_actor: expected a number > 0, got {cpus_per_actor!r}")
    for name, value in (("files_per_batch", files_per_batch), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(f"{name}: expected an int >= 1, got {value!r}")
    files, stems, anchor = list_inputs(inputs)
    out = Path(out).resolve()
    io.check_output_dir(out, anchor)
    if model is not None:
        model = str(Path(model).resolve())
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    if num_actors is None:
        num_actors = max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_actor))
    num_actors = max(1, min(int(num_actors), len(files)))
    options = {"out": str(out), "input": str(anchor), "formats": tuple(formats), "steps": steps, "schedule": schedule,
               "seed": seed, "batch_size": batch_size, "drawing": drawing, "overwrite": overwrite,
               "allow_unvalidated_steps": allow_unvalidated_steps}
    ds = ray.data.from_items([{"path": str(f), "stem": s} for f, s in zip(files, stems)])
    written = ds.map_batches(SynthesisActor, batch_size=files_per_batch, batch_format="numpy",
                             fn_constructor_kwargs={"model": model, "backend": backend, "device": device,
                                                    "sketch_kind": sketch_kind, "options": options,
                                                    # the engine's threads match the actor's CPUs, so actors do not oversubscribe
                                                    "threads": max(1, math.ceil(cpus_per_actor))},
                             concurrency=num_actors, num_cpus=cpus_per_actor)
    rows = list(written.iter_rows())
    errors = [str(r["error"]) for r in rows if r["error"]]
    if errors:  # an SDK error in an actor reaches the caller as itself (outputs of other batches may exist)
        name, _, message = errors[0].partition("\t")
        raise getattr(errors_module, name, CheartflowError)(message)
    paths = sorted(Path(str(r["output"])) for r in rows)
    log.info("ray: %d input files -> %d outputs in %s with %d actor(s)", len(files), len(paths), out, num_actors)
    return paths
