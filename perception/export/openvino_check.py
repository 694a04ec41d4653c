"""A second runtime for the exported model: OpenVINO (CPU here), checked against ONNX Runtime.

OpenVINO reads the ONNX file directly, NMS and packing subgraph included. On CPUs with bf16 or AMX
support its CPU plugin computes in bf16 by default, which moves depth by metres and flips
segmentation pixels; ``OpenVinoModel`` asks for f32 so that its outputs match ONNX Runtime's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from perception.contract import INPUT_FOCAL, INPUT_IMAGES, MODEL_FILE
from perception.evaluate import run_onnx
from perception.export.verify import ExportCheckError, compare


class OpenVinoModel:
    """A model compiled by OpenVINO; call it like ``perception.evaluate.run_onnx``: outputs by contract name."""

    def __init__(self, path: Path, device: str = "CPU", precision: str = "f32", threads: int | None = None):
        import openvino as ov  # optional (the test skips without it): kept out of importing this module

        path = Path(path)
        config = {"INFERENCE_PRECISION_HINT": precision}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(path if path.suffix == ".onnx" else path / MODEL_FILE),
                                           device, config)  # fmt: skip
        self.names = [o.any_name for o in self.compiled.outputs]
        self.request = self.compiled.create_infer_request()

    def __call__(self, images: np.ndarray, focal_px: np.ndarray) -> dict[str, np.ndarray]:
        result = self.request.infer({INPUT_IMAGES: images, INPUT_FOCAL: focal_px})
        return {name: np.array(result[output]) for name, output in zip(self.names, self.compiled.outputs, strict=True)}


def run_openvino(path: Path, images: np.ndarray, focal_px: np.ndarray) -> dict[str, np.ndarray]:
    """One run of the model at ``path`` in OpenVINO; outputs by name."""
    return OpenVinoModel(path)(images, focal_px)


def compare_with_onnxruntime(path: Path, images: np.ndarray, focal_px: np.ndarray) -> dict[str, float]:
    """OpenVINO's outputs against ONNX Runtime's (CPU) on the same frames, with the export
    tolerances (``verify.compare``: matched boxes within 1e-3 relative, segmentation agreement ≥ 99.9 %,
    depth within 1e-3 relative); raises ``ExportCheckError`` past them."""
    path = Path(path)
    path = path if path.suffix == ".onnx" else path / MODEL_FILE
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    actual = run_openvino(path, images, focal_px)
    expected = run_onnx(session, images, focal_px)
    for name, value in expected.items():
        if actual[name].shape != value.shape or actual[name].dtype != value.dtype:
            raise ExportCheckError(f"{name}: OpenVINO gives {actual[name].dtype}{list(actual[name].shape)}, "
                                   f"ONNX Runtime {value.dtype}{list(value.shape)}")  # fmt: skip
    return compare(actual, expected)
