"""Checks run by every export: the ONNX checker, ONNX Runtime against PyTorch, and batch
independence. A failed check raises ``ExportCheckError`` and the model is not written. The PyTorch
side is ``perception.evaluate.reference``, the ONNX side ``perception.evaluate.run_onnx``."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from perception.contract import OUTPUT_DEPTH, OUTPUT_DETECTIONS, OUTPUT_NUM_DETECTIONS, OUTPUT_SEMANTIC
from perception.evaluate import reference_outputs, run_onnx
from perception.model import MultiTaskNet

BOX_RTOL = 1e-3
SEGMENTATION_AGREEMENT = 0.999
DEPTH_RTOL = 1e-3


class ExportCheckError(RuntimeError):
    pass


def compare(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> dict[str, float]:
    """Agreement figures between two output dicts; raises ExportCheckError past the tolerances."""
    report: dict[str, float] = {}
    if OUTPUT_DETECTIONS in expected:
        counts_a, counts_e = actual[OUTPUT_NUM_DETECTIONS], expected[OUTPUT_NUM_DETECTIONS]
        if not np.array_equal(counts_a, counts_e):
            raise ExportCheckError(f"detection counts differ: {counts_a.tolist()} vs {counts_e.tolist()}")
        worst = 0.0
        for image, n in enumerate(counts_e):
            a, e = actual[OUTPUT_DETECTIONS][image, :n], expected[OUTPUT_DETECTIONS][image, :n]
            # Order may differ between near-equal scores: match each expected box to an actual one.
            for row in e:
                same_class = a[a[:, 5] == row[5]]
                if len(same_class) == 0:
                    raise ExportCheckError(f"image {image}: no detection of class {int(row[5])}")
                scale = np.maximum(np.abs(row[:4]).max(), 1.0)
                err = (np.abs(same_class[:, :4] - row[:4]).max(1) / scale).min()
                worst = max(worst, float(err))
        if worst > BOX_RTOL:
            raise ExportCheckError(f"boxes differ by {worst:.2e} (relative), limit {BOX_RTOL}")
        report["box_max_rel_error"] = worst
    if OUTPUT_SEMANTIC in expected:
        agreement = float((actual[OUTPUT_SEMANTIC] == expected[OUTPUT_SEMANTIC]).mean())
        if agreement < SEGMENTATION_AGREEMENT:
            raise ExportCheckError(
                f"segmentation agrees on {agreement:.4%} of pixels, need {SEGMENTATION_AGREEMENT:.1%}"
            )
        report["segmentation_agreement"] = agreement
    if OUTPUT_DEPTH in expected:
        e, a = expected[OUTPUT_DEPTH], actual[OUTPUT_DEPTH].astype(np.float32)
        rel = float((np.abs(a - e) / np.maximum(np.abs(e), 1e-6)).max())
        if rel > DEPTH_RTOL:
            raise ExportCheckError(f"depth differs by {rel:.2e} (relative), limit {DEPTH_RTOL}")
        report["depth_max_rel_error"] = rel
    return report


def verify(model: onnx.ModelProto, net: MultiTaskNet, frames: np.ndarray, focal_px: np.ndarray) -> dict[str, float]:
    """Check ``model`` against the PyTorch network on ``frames`` (uint8 [N, 3, H, W])."""
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    batched = run_onnx(session, frames, focal_px)
    report = compare(batched, reference_outputs(net, frames, focal_px))
    for i in range(len(frames)):  # a batch of N equals N batches of one
        single = run_onnx(session, frames[i : i + 1], focal_px[i : i + 1])
        compare(single, {k: v[i : i + 1] for k, v in batched.items()})
    report["frames_checked"] = len(frames)
    return report
