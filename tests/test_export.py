"""Export: one self-contained ONNX file with metadata and checksum, verified against PyTorch."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from perception.contract import OUTPUT_NAMES, ModelMetadata
from perception.evaluate import reference_outputs, run_onnx
from perception.export import CHECKSUM_FILE, MODEL_FILE, sha256, verification_frames
from perception.export.verify import ExportCheckError, compare
from perception.model import load_trained
from tests.conftest import FRAMES_DIR


def test_exported_folder_is_complete_and_self_describing(tiny_model):
    folder = tiny_model / "1"
    model = onnx.load(folder / MODEL_FILE)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert (folder / CHECKSUM_FILE).read_text().split()[0] == sha256(folder / MODEL_FILE)
    meta = ModelMetadata.from_props({p.key: p.value for p in model.metadata_props})
    assert (meta.name, meta.version) == ("drivenet", "1")
    assert (meta.input_height, meta.input_width) == (96, 160)
    assert "car" in meta.detection_classes and "road" in meta.segmentation_classes
    assert {o.name for o in model.graph.output} == set(OUTPUT_NAMES)
    assert any(n.op_type == "NonMaxSuppression" for n in model.graph.node)
    report = json.loads((folder / "export.json").read_text())["verification"]
    assert report["frames_checked"] >= 6  # random and real frames


def test_onnx_matches_pytorch_and_batches_are_independent(tiny_model, tiny_run):
    net, _ = load_trained(tiny_run / "model.safetensors")
    session = ort.InferenceSession(str(tiny_model / "1" / MODEL_FILE), providers=["CPUExecutionProvider"])
    frames = verification_frames(96, 160, FRAMES_DIR, seed=3)
    focal = np.linspace(80, 140, len(frames)).astype(np.float32)
    batched = run_onnx(session, frames, focal)
    report = compare(batched, reference_outputs(net, frames, focal))
    assert report["segmentation_agreement"] >= 0.999
    assert batched["num_detections"].sum() > 0, "the tiny model should find its red cars' look-alikes"
    for i in range(len(frames)):
        single = run_onnx(session, frames[i : i + 1], focal[i : i + 1])
        compare(single, {k: v[i : i + 1] for k, v in batched.items()})
    assert batched["detections"].shape == (len(frames), 100, 6)
    assert batched["semantic"].dtype == np.uint8 and batched["depth"].dtype == np.float32


def test_compare_rejects_disagreement(tiny_model):
    session = ort.InferenceSession(str(tiny_model / "1" / MODEL_FILE), providers=["CPUExecutionProvider"])
    frames = verification_frames(96, 160, None)
    out = run_onnx(session, frames, np.full(len(frames), 100, np.float32))
    broken = {k: v.copy() for k, v in out.items()}
    broken["depth"] *= 1.01
    with pytest.raises(ExportCheckError, match="depth"):
        compare(broken, out)
    broken = {k: v.copy() for k, v in out.items()}
    broken["semantic"][:, :10] += 1
    with pytest.raises(ExportCheckError, match="segmentation"):
        compare(broken, out)
