"""How much better a model fits its training slices than held-out ones: one-step SSIM/PSNR on train and on val.

    python benchmarks/quality/fit_gap.py --model edges=cheartflow_sdk/default_models/edges \\
        --model labels=cheartflow_sdk/default_models/labels \\
        --train packed/train-128.npz --val packed/val-128.npz --out benchmarks/quality/fit_gap.json

Both splits are scored the way training scores val (`training.selection.score_one_step`, the same
evenly spread choice of `--count` slices), so a large train-val gap means the model memorizes its
training slices: the case for augmentation.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from cheartflow_sdk.atomic import atomic_write_text  # noqa: E402
from cheartflow_sdk.cli.data import load_training_set  # noqa: E402
from cheartflow_sdk.config import read_config  # noqa: E402


def fit_gap(model_dir: str, train: str, val: str, count: int) -> dict[str, dict[str, float]]:
    """{"train": {"ssim", "psnr"}, "val": {...}} of the model's one-step synthesis on `count` slices of each split."""
    from cheartflow_sdk.models.files import load_encoder
    from cheartflow_sdk.training.selection import ValidationSet, score_one_step

    kind = read_config(model_dir)[0].sketch_kind
    encoder = load_encoder(model_dir).eval()
    scores = {}
    for split, path in (("train", train), ("val", val)):
        images, sketches = load_training_set(path, kind, encoder.config.resolution, split=split)
        result = score_one_step(encoder, ValidationSet.from_arrays(images, sketches, count), step=0)
        scores[split] = {"ssim": round(result.val_ssim, 4), "psnr": round(result.val_psnr, 2)}
    return scores


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", required=True, metavar="NAME=DIR", help="a model folder, named")
    ap.add_argument("--train", required=True, help="packed train .npz (or an ACDC folder)")
    ap.add_argument("--val", required=True, help="packed val .npz (or an ACDC folder)")
    ap.add_argument("--count", type=int, default=200, help="slices scored per split (evenly spread)")
    ap.add_argument("--out", help="write the scores as JSON here")
    args = ap.parse_args(argv)
    doc = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "command": " ".join(["python", "benchmarks/quality/fit_gap.py", *(argv or sys.argv[1:])]), "models": {}}
    for item in args.model:
        name, _, folder = item.partition("=")
        if not folder:
            ap.error(f"--model expects NAME=DIR, got {item!r}")
        doc["models"][name] = fit_gap(folder, args.train, args.val, args.count)
        print(name, json.dumps(doc["models"][name]))
    if args.out:
        atomic_write_text(args.out, json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
