"""The research harness: what the paper's comparisons need, none of it used by inference.

- ``baselines``: pix2pix and iDDPM trained on the same data (``cheartflow train-baseline``);
- ``segmentation``: the evaluation segmenter and Dice (``cheartflow train-seg``);
- ``metrics``: SSIM, PSNR, Fréchet distances, LPIPS;
- ``evaluation``: the evaluator behind ``cheartflow eval`` and ``benchmarks/quality/report.py``;
- ``synthesis_cache``: synthesized images kept on disk across evaluation runs.

It depends on the runtime and on training; nothing in the runtime imports it (tests/test_architecture.py).
Importing a subpackage loads numpy only; torch loads when a network is used.
"""
