"""Ray Data batch synthesis (issue 16): a local Ray instance with 2 CPUs writes the same files as the local
`cheartflow synth` for the same inputs and seed (skipped without ray)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from cheartflow_sdk.errors import InvalidInputError


ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


@pytest.fixture()
def sketch_folder(tmp_path, phantom_set):
    """5 PNG sketches, a .npy holding 2 and (with nibabel) a 3-slice NIfTI volume."""
    _, _, sketches = phantom_set
    u8 = (sketches[:, 0] * 255).astype(np.uint8)
    folder = tmp_path / "sketches"
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f"s{i}.png"), u8[i])
    np.save(folder / "pair.npy", u8[5:7])
    try:
        import nibabel as nib

        nib.save(nib.Nifti1Image(np.moveaxis(sketches[7:10, 0], 0, 2).astype(np.float32), np.diag([1.5, 1.5, 8, 1])),
                 str(folder / "vol.nii.gz"))
    except ImportError:
        pass
    return folder


def _contents(folder: Path) -> dict[str, np.ndarray]:
    out = {}
    for f in sorted(folder.iterdir()):
        if f.name.endswith(".png"):
            out[f.name] = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        elif f.name.endswith(".nii.gz"):
            import nibabel as nib

            img = nib.load(str(f))
            out[f.name] = np.asarray(img.dataobj)
            out[f.name + ":affine"] = img.affine
    return out


@pytest.mark.parametrize("steps", [1, 2])
def test_ray_synthesis_equals_local_synthesis(local_ray, onnx_model, sketch_folder, tmp_path, steps):
    from cheartflow_sdk.cli import main
    from cheartflow_sdk.ray_synth import synthesize_with_ray

    local, remote = tmp_path / "local", tmp_path / "ray"
    assert main(["-q", "synth", str(sketch_folder), "--model", str(onnx_model), "--out", str(local),
                 "--steps", str(steps), "--seed", "7"]) == 0
    paths = synthesize_with_ray(sketch_folder, remote, onnx_model, steps=steps, seed=7, num_actors=2,
                                files_per_batch=2, batch_size=3)
    want, got = _contents(local), _contents(remote)
    assert sorted(p.name for p in paths) == sorted(k for k in want if not k.endswith(":affine"))
    assert want.keys() == got.keys() and len(want) >= 7
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert not list(remote.glob(".*tmp*"))  # atomic writes left nothing behind


def test_ray_cli_and_list_of_files(local_ray, onnx_model, sketch_folder, tmp_path):
    from cheartflow_sdk.cli import main
    from cheartflow_sdk.ray_synth import synthesize_with_ray

    out = tmp_path / "cli"
    assert main(["-q", "synth", str(sketch_folder), "--model", str(onnx_model), "--out", str(out), "--ray",
                 "--actors", "1"]) == 0
    files = sorted(sketch_folder.glob("s*.png"))[:2]
    listed = synthesize_with_ray(files, tmp_path / "list", onnx_model, num_actors=1)
    assert [p.name for p in listed] == ["s0_synth.png", "s1_synth.png"]
    for p in listed:
        np.testing.assert_array_equal(cv2.imread(str(p)), cv2.imread(str(out / p.name)))
    assert main(["-q", "synth", str(sketch_folder), "--model", str(onnx_model), "--out", str(out), "--ray"]) == 2  # exists


def test_ray_refuses_what_it_cannot_do(onnx_model, sketch_folder, tmp_path):
    from cheartflow_sdk.ray_synth import synthesize_with_ray

    with pytest.raises(InvalidInputError, match="DICOM series"):
        synthesize_with_ray(sketch_folder, tmp_path / "o", onnx_model, formats=["dicom"])
    with pytest.raises(InvalidInputError, match="no such file or folder"):
        synthesize_with_ray(tmp_path / "missing", tmp_path / "o", onnx_model)
    with pytest.raises(InvalidInputError, match="files_per_batch: expected an int >= 1"):
        synthesize_with_ray(sketch_folder, tmp_path / "o", onnx_model, files_per_batch=0)
    with pytest.raises(InvalidInputError, match="cpus_per_actor: expected a number > 0"):
        synthesize_with_ray(sketch_folder, tmp_path / "o", onnx_model, cpus_per_actor=0)
