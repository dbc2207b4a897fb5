"""Training and evaluation data for the commands, and `cheartflow pack`."""

from __future__ import annotations

import argparse
import logging

from ..errors import CheartflowError

log = logging.getLogger("cheartflow")


def load_split(data: str, split: str, resolution: int):
    """A SliceSet of `split` at `resolution` from an ACDC folder, or from a packed .npz (its one split)."""
    from ..data import PreprocessConfig, load_acdc, load_slices

    slices = load_slices(data) if data.endswith(".npz") else load_acdc(data, split, config=PreprocessConfig(size=resolution))
    if slices.images.shape[-1] != resolution:
        raise CheartflowError(f"{data} holds {slices.images.shape[-1]}px slices but resolution={resolution} was asked for")
    return slices


def load_training_set(data: str, sketch: str, resolution: int, split: str = "train"):
    """(images [N,1,R,R] in [-1,1], sketches [N,1,R,R] in [0,1]) from an ACDC folder or a packed .npz."""
    from ..sketch import make_sketch

    slices = load_split(data, split, resolution)
    images = slices.images.astype("float32")
    return images, make_sketch(sketch, images=images, labels=slices.labels)


def cmd_pack(args: argparse.Namespace) -> int:
    from ..data import PreprocessConfig, load_acdc, save_slices

    slices = load_acdc(args.data, args.split, config=PreprocessConfig(size=args.resolution), progress=not args.quiet)
    if args.per_patient:
        from ..research.evaluation import per_patient_indices

        slices = slices.subset(per_patient_indices(slices.patients, args.per_patient))
    path = save_slices(args.out, slices)
    log.info("packed %d %s slices (%dpx) into %s", len(slices), args.split, args.resolution, path)
    return 0


def add_parsers(sub) -> None:
    k = sub.add_parser("pack", help="preprocess one ACDC split into a single .npz (for `train --data` on another machine)")
    k.add_argument("--data", required=True, help="ACDC root folder (with splits.json)")
    k.add_argument("--split", choices=("train", "val", "test"), default="train")
    k.add_argument("--resolution", type=int, default=128)
    k.add_argument("--out", required=True, help="output .npz path")
    k.add_argument("--per-patient", type=int, metavar="K",
                   help="keep K slices per patient, evenly spread (e.g. a small val file for checkpoint selection)")
    k.set_defaults(func=cmd_pack)
