"""Data: the public preprocessing, ACDC loading, compact slice files, and a procedural phantom."""

from .acdc import SliceSet, load_acdc, load_slices, read_split, save_slices
from .phantom import make_phantom, write_acdc_like, write_phantom_acdc
from .preprocess import PreprocessConfig, crop_box, preprocess, robust_scale

__all__ = [
    "PreprocessConfig",
    "SliceSet",
    "crop_box",
    "load_acdc",
    "load_slices",
    "make_phantom",
    "preprocess",
    "read_split",
    "robust_scale",
    "save_slices",
    "write_acdc_like",
    "write_phantom_acdc",
]
