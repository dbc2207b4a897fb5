"""CPU engines of issue 16: the OpenVINO backend, int8 exports behind the quality gate, and the registry's
data-driven CPU order (a stand-in for the engines where the order alone is under test)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import cheartflow_sdk as cf
from cheartflow_sdk import contract, cpu_features
from cheartflow_sdk.backends import registry
from cheartflow_sdk.errors import InvalidInputError, ModelMismatchError

pytest.importorskip("torch")
pytest.importorskip("onnx")


def _reference(model_dir):
    from cheartflow_sdk.backends.torch_backend import TorchEncoder

    return TorchEncoder(model_dir, device="cpu")


def _gate(engine, model_dir):
    from cheartflow_sdk.export import check_parity

    return check_parity(engine, _reference(model_dir), engine.config.resolution)


# ------------------------------------------------------------------ OpenVINO backend


def test_openvino_reads_our_onnx_with_its_metadata(trained_model_dir, onnx_model):
    pytest.importorskip("openvino")
    from cheartflow_sdk.backends.openvino_backend import OpenVINOEncoder
    from cheartflow_sdk.export import REDUCED_MIN_PSNR_DB

    enc = OpenVINOEncoder(onnx_model)
    want = "bf16" if cpu_features.has_native_bf16() else "fp32"
    assert enc.name == f"openvino-cpu-{want}" and enc.precision == want
    assert enc.config == _reference(trained_model_dir).config
    assert enc.metadata[contract.META_FORMAT] == "onnx"
    report = _gate(enc, trained_model_dir)
    assert report.passes(min_psnr_db=REDUCED_MIN_PSNR_DB), report
    fp32 = OpenVINOEncoder(onnx_model, precision="fp32")
    assert fp32.name == "openvino-cpu-fp32"
    assert _gate(fp32, trained_model_dir).psnr_db > 60  # fp32 reordered, not rounded
    x = np.zeros((0, 1, enc.config.resolution, enc.config.resolution), np.float32)
    assert enc(x, np.zeros(0, np.float32)).shape == x.shape
    with pytest.raises(InvalidInputError, match="expected x"):
        enc(np.zeros((2, 1, 8, 8), np.float32), np.zeros(2, np.float32))
    pipe = cf.load_pipeline(onnx_model, backend="openvino")
    assert pipe.backend == enc.name
    out = pipe.synthesize(np.zeros((2, enc.config.resolution, enc.config.resolution), np.uint8), dtype=np.uint8)
    assert out.shape == (2, 1, enc.config.resolution, enc.config.resolution) and out.dtype == np.uint8


def test_openvino_dynamic_batch_runs_in_chunks(trained_model_dir, onnx_model, monkeypatch):
    pytest.importorskip("openvino")
    from cheartflow_sdk.backends import chunking
    from cheartflow_sdk.backends.openvino_backend import OpenVINOEncoder

    enc = OpenVINOEncoder(onnx_model, precision="fp32")
    assert enc.layout == "dynamic batch"
    sizes = []
    run = enc._dynamic
    monkeypatch.setattr(enc, "_dynamic", lambda x, t: sizes.append(len(x)) or run(x, t))
    n = chunking.CPU_CHUNK + 3
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, (n, 1, enc.config.resolution, enc.config.resolution)).astype(np.float32)
    t = rng.uniform(0, 1, n).astype(np.float32)
    out = enc(x, t)
    assert sizes == [chunking.CPU_CHUNK, 3]
    assert np.abs(out - _reference(trained_model_dir)(x, t)).max() <= 1e-3  # fp32, images in input order


def test_openvino_runs_every_batch_size_on_two_static_graphs_within_the_gate(trained_model_dir, onnx_model,
                                                                           monkeypatch):
    pytest.importorskip("openvino")
    from cheartflow_sdk.backends import openvino_backend
    from cheartflow_sdk.errors import ModelMismatchError
    from cheartflow_sdk.export import REDUCED_MIN_PSNR_DB
    from cheartflow_sdk.research.metrics.image import psnr

    if not cpu_features.has_native_bf16():
        pytest.skip("static shapes are compiled for bf16 and int8 only, and this CPU has no native bf16")
    fp32 = openvino_backend.OpenVINOEncoder(onnx_model, precision="fp32")
    assert fp32.layout == "dynamic batch"  # OpenVINO crashes on our static fp32 IR
    two_threads = openvino_backend.OpenVINOEncoder(onnx_model, threads=2)
    assert two_threads.layout == f"static: 1 image + 2 streams x {openvino_backend.CHUNK} images"
    assert two_threads._streams is None  # compiled on the first batch of two or more images
    one_thread = openvino_backend.OpenVINOEncoder(onnx_model, threads=1)
    assert one_thread.layout == "static: 1 image"
    r = two_threads.config.resolution
    x = np.random.default_rng(0).uniform(-1, 1, (7, 1, r, r)).astype(np.float32)
    t = np.linspace(0.3, 1.0, 7).astype(np.float32)
    reference = _reference(trained_model_dir)(x, t)
    one_by_one = np.concatenate([two_threads(x[i:i + 1], t[i:i + 1]) for i in range(len(x))])
    assert two_threads._streams is None  # single images never compile the streams graph
    for enc, batch in [(two_threads, 7), (two_threads, 6), (two_threads, 2), (one_thread, 3), (fp32, 5)]:
        out = enc(x[:batch], t[:batch])
        assert out.shape == (batch, 1, r, r)
        assert psnr((out + 1) / 2, (reference[:batch] + 1) / 2).min() >= REDUCED_MIN_PSNR_DB
        # chunks land in input order: each image matches its own single-image call
        assert psnr((out + 1) / 2, (one_by_one[:batch] + 1) / 2).min() >= REDUCED_MIN_PSNR_DB

    def refuse(self, batch):
        raise ModelMismatchError("static shape refused (test)")

    assert two_threads._streams is not None
    monkeypatch.setattr(openvino_backend.OpenVINOEncoder, "_static_model", refuse)
    refused = openvino_backend.OpenVINOEncoder(onnx_model, threads=2)
    assert refused.layout == "dynamic batch"  # a refusal falls back to the dynamic compile
    out = refused(x[:3], t[:3])
    assert psnr((out + 1) / 2, (reference[:3] + 1) / 2).min() >= REDUCED_MIN_PSNR_DB


def test_openvino_precision_follows_the_cpu(onnx_model, monkeypatch):
    pytest.importorskip("openvino")
    from cheartflow_sdk.backends import openvino_backend
    from cheartflow_sdk.backends.openvino_backend import OpenVINOEncoder

    monkeypatch.setattr(openvino_backend, "has_native_bf16", lambda: False)
    assert OpenVINOEncoder(onnx_model).name == "openvino-cpu-fp32"
    with pytest.raises(ModelMismatchError, match="no native bf16"):
        OpenVINOEncoder(onnx_model, precision="bf16")
    with pytest.raises(InvalidInputError, match="precision must be one of"):
        OpenVINOEncoder(onnx_model, precision="int4")


def test_openvino_refuses_bad_files_and_devices(onnx_model, tmp_path):
    pytest.importorskip("openvino")
    import onnx

    from cheartflow_sdk.backends.openvino_backend import OpenVINOEncoder

    with pytest.raises(ModelMismatchError, match="runs on the CPU"):
        OpenVINOEncoder(onnx_model, device="cuda")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(InvalidInputError, match="not a loadable ONNX / OpenVINO IR model"):
        OpenVINOEncoder(bad)
    with pytest.raises(InvalidInputError, match="expected an ONNX"):
        OpenVINOEncoder(tmp_path / "missing.onnx")
    proto = onnx.load(str(onnx_model))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(ModelMismatchError, match="no cheartflow metadata"):
        OpenVINOEncoder(bare)
    with pytest.raises(InvalidInputError, match="backend='tensorrt' cannot open it"):
        registry.open_encoder(onnx_model, "tensorrt", "cpu")


# ------------------------------------------------------------------ exports behind the quality gate


def test_export_openvino_ir_is_gated_carries_metadata_and_is_picked_by_auto(model_copy, onnx_model):
    pytest.importorskip("openvino")
    from cheartflow_sdk.backends.openvino_backend import OpenVINOEncoder
    from cheartflow_sdk.export import export_engine, verify_engine

    shutil.copy(onnx_model, model_copy / contract.ONNX_FILENAME)
    path, report = export_engine(model_copy, "openvino")
    assert path == model_copy / contract.OPENVINO_FILENAME and path.with_suffix(".bin").is_file()
    assert report is not None and report.psnr_db >= 35
    enc = OpenVINOEncoder(path)
    here = "bf16" if cpu_features.has_native_bf16() else "fp32"
    assert enc.engine_precision == here and enc.name == f"openvino-cpu-{here}"
    assert enc.metadata[contract.META_FORMAT] == "openvino"
    assert enc.metadata[contract.META_CPU_ISA] == cpu_features.isa_class()
    assert float(enc.metadata[contract.META_GATE_PSNR]) == pytest.approx(report.psnr_db, abs=0.01)
    assert not list(model_copy.glob(".*tmp*"))
    assert verify_engine(path).passed
    pipe = cf.load_pipeline(model_copy, device="cpu")
    if here == "bf16":  # the default order ranks OpenVINO bf16 ahead of ONNX Runtime fp32
        assert pipe.backend == "openvino-cpu-bf16"
    else:  # OpenVINO fp32 ranks behind ONNX Runtime fp32
        assert pipe.backend == "onnxruntime-cpu"
    assert cf.load_pipeline(model_copy, backend="openvino").backend == enc.name


@pytest.mark.parametrize("fmt", ["onnx-int8", "openvino-int8"])
def test_int8_export_passes_the_gate_and_carries_metadata(model_copy, fmt):
    if fmt == "openvino-int8":
        pytest.importorskip("nncf")
    else:
        pytest.importorskip("onnxruntime.quantization")
    from cheartflow_sdk.export import export_engine

    path, report = export_engine(model_copy, fmt, calibration=None, calibration_count=8)
    assert path.name == contract.ENGINE_FILENAMES[fmt] and path.is_file()
    assert report.psnr_db >= 35 and report.finite
    enc = registry.open_encoder(path, "auto", "cpu")
    assert enc.precision == "int8" and enc.name.endswith("-int8")
    assert enc.metadata[contract.META_FORMAT] == fmt
    assert "phantom x8" in enc.metadata[contract.META_CALIBRATION]
    assert enc.metadata[contract.META_CPU_ISA] == cpu_features.isa_class()
    assert float(enc.metadata[contract.META_GATE_PSNR]) >= 35
    assert _gate(enc, model_copy).psnr_db == pytest.approx(report.psnr_db, abs=0.01)
    pipe = cf.load_pipeline(model_copy, device="cpu")
    assert pipe.backend == enc.name  # int8 engines lead the default CPU order
    assert not list(model_copy.glob(".*tmp*"))


def test_openvino_int8_compiles_its_streams_graph_on_the_first_batch(model_copy, monkeypatch):
    pytest.importorskip("nncf")
    from cheartflow_sdk.backends import openvino_backend
    from cheartflow_sdk.export import REDUCED_MIN_PSNR_DB, export_engine
    from cheartflow_sdk.research.metrics.image import psnr

    path, _ = export_engine(model_copy, "openvino-int8", calibration=None, calibration_count=8)
    enc = openvino_backend.OpenVINOEncoder(path, threads=2)  # int8 gets static graphs on every CPU
    assert enc.layout == f"static: 1 image + 2 streams x {openvino_backend.CHUNK} images"
    r = enc.config.resolution
    x = np.random.default_rng(1).uniform(-1, 1, (5, 1, r, r)).astype(np.float32)
    t = np.linspace(0.4, 1.0, 5).astype(np.float32)
    one_by_one = np.concatenate([enc(x[i:i + 1], t[i:i + 1]) for i in range(len(x))])
    assert enc._streams is None
    out = enc(x, t)
    assert enc._streams is not None and enc._streams.streams == 2
    assert psnr((out + 1) / 2, (one_by_one + 1) / 2).min() >= REDUCED_MIN_PSNR_DB

    pipe = cf.load_pipeline(path, backend="openvino", threads=2)
    pipe.warmup(steps=(1, 2))
    assert pipe.encoder._streams is None  # a batch-1 warm-up leaves the streams graph for later
    pipe.warmup(steps=(1,), batch_sizes=(1, 4))
    assert pipe.encoder._streams is not None  # warming up a batch size pays for it now

    def refuse(self, batch):
        raise ModelMismatchError("static shape refused (test)")

    later = openvino_backend.OpenVINOEncoder(path, threads=2)
    monkeypatch.setattr(openvino_backend.OpenVINOEncoder, "_static_model", refuse)
    out = later(x, t)  # a refused streams graph leaves batches on the 1-image graph, once
    assert later.layout == "static: 1 image" and later._streams is None
    assert psnr((out + 1) / 2, (one_by_one + 1) / 2).min() >= REDUCED_MIN_PSNR_DB


@pytest.mark.parametrize("fmt", ["onnx-int8", "openvino-int8", "openvino"])
def test_reduced_precision_export_that_fails_the_gate_writes_nothing(model_copy, fmt, monkeypatch):
    pytest.importorskip("nncf" if fmt == "openvino-int8" else ("openvino" if fmt == "openvino" else "onnxruntime"))
    from cheartflow_sdk.export import export_engine, parity

    monkeypatch.setattr(parity, "REDUCED_MIN_PSNR_DB", 500.0)
    with pytest.raises(ModelMismatchError, match=r"parity gate failed .*PSNR .* dB.*nothing written"):
        export_engine(model_copy, fmt, **({} if fmt == "openvino" else {"calibration_count": 4}))
    assert sorted(p.name for p in model_copy.iterdir()) == ["config.json", "model.safetensors"]


def test_calibration_reads_a_packed_slices_file(trained_model_dir, tmp_path):
    from cheartflow_sdk.data import SliceSet, save_slices
    from cheartflow_sdk.data.phantom import make_phantom
    from cheartflow_sdk.export.calibration import calibration_inputs

    from conftest import RES

    images, labels = make_phantom(10, size=RES, seed=3)
    n = len(images)
    save_slices(tmp_path / "val.npz", SliceSet(images=images, labels=labels.astype(np.uint8), patients=["p"] * n,
                                               frames=["ED"] * n, slice_index=list(range(n))))
    ref = _reference(trained_model_dir)
    calib = calibration_inputs(ref, tmp_path / "val.npz", count=4)
    steps = 1 + len(ref.config.default_schedule)
    assert calib.x.shape == (4 * steps, 1, RES, RES) and calib.t.shape == (4 * steps,)
    assert set(np.unique(calib.t).tolist()) == {1.0, *ref.config.default_schedule}
    assert "val.npz x4" in calib.source
    with pytest.raises(InvalidInputError, match="no such file"):
        calibration_inputs(ref, tmp_path / "missing", count=4)


# ------------------------------------------------------------------ the registry's CPU order (stand-ins)


def _stub_folder(folder: Path) -> None:
    for name in (contract.ONNX_FILENAME, contract.ONNX_INT8_FILENAME, contract.OPENVINO_FILENAME,
                 contract.OPENVINO_INT8_FILENAME, contract.COMPILED_FILENAME):
        (folder / name).write_bytes(b"stub")
    contract.sidecar_path(folder / contract.COMPILED_FILENAME).write_text(json.dumps({contract.META_DEVICE: "cpu"}))


def test_cpu_order_is_data_and_follows_the_cpu(model_copy, monkeypatch):
    _stub_folder(model_copy)
    monkeypatch.setattr(registry, "_installed", lambda m: True)
    monkeypatch.setattr(registry, "_use_cuda", lambda d: False)
    monkeypatch.delenv(registry.CPU_ORDER_ENV, raising=False)
    monkeypatch.setattr(cpu_features, "has_native_bf16", lambda: True)
    listed = [(b, p.name) for b, p, _ in registry.candidates(model_copy, "cpu")]
    assert listed == [("openvino", "model.int8.xml"), ("openvino", "model.openvino.xml"), ("onnxruntime", "model.onnx"),
                      ("torch-compiled", "model.pt2"), ("onnxruntime", "model.int8.onnx"), ("torch", "model")]
    monkeypatch.setattr(cpu_features, "has_native_bf16", lambda: False)  # the IR now counts as OpenVINO fp32
    listed = [p.name for _, p, _ in registry.candidates(model_copy, "cpu")]
    assert listed.index("model.openvino.xml") > listed.index("model.onnx")  # measured slower than ORT fp32
    monkeypatch.setattr(registry, "_installed", lambda m: m != "openvino")  # no OpenVINO: its engines drop out
    assert "openvino" not in [b for b, _, _ in registry.candidates(model_copy, "cpu")]
    monkeypatch.setattr(registry, "CPU_ORDER", ("torch-fp32", "onnxruntime-fp32"))  # the order is the table's
    assert [b for b, _, _ in registry.candidates(model_copy, "cpu")] == ["torch", "onnxruntime"]


def test_cpu_order_environment_override(model_copy, monkeypatch):
    _stub_folder(model_copy)
    monkeypatch.setattr(registry, "_installed", lambda m: True)
    monkeypatch.setattr(registry, "_use_cuda", lambda d: False)
    monkeypatch.setenv(registry.CPU_ORDER_ENV, "onnxruntime-fp32, torch-fp32")
    assert [p.name for _, p, _ in registry.candidates(model_copy, "cpu")] == ["model.onnx", "model"]
    monkeypatch.setenv(registry.CPU_ORDER_ENV, "onnxruntime-fp32,tensorrt-fp8")
    with pytest.raises(InvalidInputError, match=r"CHEARTFLOW_CPU_ORDER: unknown engine kinds \['tensorrt-fp8'\]"):
        registry.candidates(model_copy, "cpu")


class _StandIn:
    """An encoder stand-in: a name, a precision and the metadata of a gate run on some CPU class."""

    def __init__(self, backend, file, precision, isa):
        self.name = f"{backend}-stand-in-{file.name}"
        self.precision = precision
        self.metadata = {contract.META_CPU_ISA: isa} if isa else {}
        self.config = None


def test_auto_picks_the_first_engine_that_opens_and_whose_gate_vouches_for_this_cpu(model_copy, monkeypatch, caplog):
    _stub_folder(model_copy)
    monkeypatch.setattr(registry, "_installed", lambda m: True)
    monkeypatch.setattr(registry, "_use_cuda", lambda d: False)
    monkeypatch.delenv(registry.CPU_ORDER_ENV, raising=False)
    monkeypatch.setattr(cpu_features, "has_native_bf16", lambda: True)
    # the fallback logic, not the measured ranking: the int8 engines first, so both skip paths are taken
    monkeypatch.setattr(registry, "CPU_ORDER", ("openvino-int8", "onnxruntime-int8", "openvino-bf16", "onnxruntime-fp32"))
    here = cpu_features.isa_class()
    opened = []

    def fake_open(backend, file, device, threads=None):
        opened.append(file.name)
        if file.name == contract.OPENVINO_INT8_FILENAME:
            raise ModelMismatchError("stand-in: OpenVINO cannot compile this here")
        if file.name == contract.ONNX_INT8_FILENAME:  # gated on another class of CPU
            return _StandIn(backend, file, "int8", "baseline" if here != "baseline" else "amx")
        precision = "bf16" if file.name == contract.OPENVINO_FILENAME else "fp32"
        return _StandIn(backend, file, precision, here)

    monkeypatch.setattr(registry, "_open", fake_open)
    with caplog.at_level("WARNING", logger="cheartflow_sdk.backends.registry"):
        enc = registry.open_encoder(model_copy, "auto", "cpu")
    assert enc.name == "openvino-stand-in-model.openvino.xml"
    assert opened == ["model.int8.xml", "model.int8.onnx", "model.openvino.xml"]
    assert "cannot compile this here" in caplog.text and "quality gate ran on a" in caplog.text


def test_registry_backend_names_and_files(model_copy, onnx_model):
    assert "openvino" in registry.BACKENDS
    assert contract.engine_backend("m.xml") == "openvino"
    assert contract.engine_backends("m.onnx") == ("onnxruntime", "openvino") and contract.engine_backends("m.bin") == ()
    with pytest.raises(Exception, match="no engine for openvino"):
        registry.open_encoder(model_copy, "openvino", "cpu")
