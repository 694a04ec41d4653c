"""Evaluation: score a checkpoint or an exported ONNX model on held-out data (``perception eval``).

Detection: COCO mAP@[.5:.95] and mAP@.5 (pycocotools). Segmentation: per-class IoU and mIoU from a
confusion matrix. Depth: AbsRel, SqRel, RMSE, RMSE-log and δ < 1.25, 1.25², 1.25³ over valid
pixels, averaged per image (the Eigen et al. protocol). Frames are letterboxed to the model's input
exactly as the service does, and scored at that resolution.

- ``metrics``: the ``Evaluator`` and the Markdown table;
- ``reference``: the PyTorch twin of the exported graph (network, torchvision NMS, packing);
- ``runners``: predictors for an ONNX file or a torch checkpoint, held-out samples, ``evaluate``;
- ``command``: the ``perception eval`` entry.

It sits below training (the trainer may score held-out frames while it trains) and below export
(which verifies its graph against ``reference`` and scores the file it wrote).
"""

from perception.evaluate.metrics import DEPTH_METRICS, Evaluator, depth_errors, markdown_table
from perception.evaluate.reference import pack_detections, reference_outputs
from perception.evaluate.runners import (
    Predictor,
    evaluate,
    held_out_samples,
    onnx_predictor,
    run_onnx,
    torch_predictor,
)

__all__ = [
    "DEPTH_METRICS",
    "Evaluator",
    "Predictor",
    "depth_errors",
    "evaluate",
    "held_out_samples",
    "markdown_table",
    "onnx_predictor",
    "pack_detections",
    "reference_outputs",
    "run_onnx",
    "torch_predictor",
]
