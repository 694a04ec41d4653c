"""Evaluation: score a checkpoint or an exported ONNX model on held-out data (``perception eval``).

Detection: COCO mAP@[.5:.95] and mAP@.5 (pycocotools). Segmentation: per-class IoU and mIoU from a
confusion matrix. Depth: AbsRel, SqRel, RMSE, RMSE-log and δ < 1.25, 1.25², 1.25³ over valid
pixels, averaged per image (the Eigen et al. protocol). Frames are letterboxed to the model's input
exactly as the service does. Each data set's ``Protocol`` says what is scored: the synthetic world
at the model's resolution over every class; CamVid, KITTI and nuScenes at the source image's
resolution over the classes they label, with their own merges, box-height and depth-range rules.

- ``protocols``: the ``Protocol`` of each data set, declared in one table;
- ``metrics``: the ``Evaluator`` and the Markdown table;
- ``reference``: the PyTorch twin of the exported graph (network, torchvision NMS, packing);
- ``runners``: predictors for an ONNX file or a torch checkpoint, held-out samples, ``evaluate``, ``score``;
- ``periodic``: the trainer's quick evaluation every ``train.eval_every`` steps;
- ``command``: the ``perception eval`` entry.

It sits below training (the trainer scores held-out frames while it trains) and below export
(which verifies its graph against ``reference`` and scores the file it wrote).
"""

from perception.evaluate.metrics import DEPTH_METRICS, Evaluator, depth_errors, markdown_table, median_scaled
from perception.evaluate.protocols import PROTOCOLS, SYNTHETIC, Protocol, protocol_for
from perception.evaluate.reference import pack_detections, reference_outputs
from perception.evaluate.runners import (
    Predictor,
    SourceFrame,
    evaluate,
    held_out_samples,
    letterboxed,
    onnx_predictor,
    run_onnx,
    score,
    to_source,
    torch_predictor,
)

__all__ = [
    "DEPTH_METRICS",
    "PROTOCOLS",
    "SYNTHETIC",
    "Evaluator",
    "Predictor",
    "Protocol",
    "SourceFrame",
    "depth_errors",
    "evaluate",
    "held_out_samples",
    "letterboxed",
    "markdown_table",
    "median_scaled",
    "onnx_predictor",
    "pack_detections",
    "protocol_for",
    "reference_outputs",
    "run_onnx",
    "score",
    "to_source",
    "torch_predictor",
]
