"""``perception eval``: score a checkpoint or an exported ONNX model on held-out data.

Detection: COCO mAP@[.5:.95] and mAP@.5 (pycocotools). Segmentation: per-class IoU and mIoU from a
confusion matrix. Depth: AbsRel, SqRel, RMSE, RMSE-log and δ < 1.25, 1.25², 1.25³ over valid
pixels, averaged per image (the Eigen et al. protocol). Frames are letterboxed to the model's input
exactly as the service does, and scored at that resolution.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from perception.classes import DETECTION_CLASSES, IGNORE_INDEX, SEGMENTATION_CLASSES
from perception.contract import OUTPUT_DEPTH, OUTPUT_DETECTIONS, OUTPUT_NUM_DETECTIONS, OUTPUT_SEMANTIC
from perception.data.sample import Sample

Predictor = Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]


class Evaluator:
    """Accumulates predictions against targets, then ``summary()``."""

    def __init__(self, min_depth: float = 1e-3, max_depth: float = 200.0):
        self.min_depth, self.max_depth = min_depth, max_depth
        self.gt_images: list[dict] = []
        self.gt_annotations: list[dict] = []
        self.detections: list[dict] = []
        self.confusion = np.zeros((len(SEGMENTATION_CLASSES),) * 2, np.int64)
        self.depth_rows: list[np.ndarray] = []
        self.has = {"detection": False, "segmentation": False, "depth": False}

    def add(self, sample: Sample, outputs: dict[str, np.ndarray]) -> None:
        """One sample (at model resolution) and that frame's outputs (no batch axis)."""
        image_id = len(self.gt_images) + 1
        h, w = sample.size
        self.gt_images.append({"id": image_id, "width": w, "height": h})
        if sample.has_boxes and OUTPUT_DETECTIONS in outputs:
            self.has["detection"] = True
            for box, label in zip(sample.boxes, sample.labels, strict=True):
                x1, y1, x2, y2 = (float(v) for v in box)
                self.gt_annotations.append({
                    "id": len(self.gt_annotations) + 1, "image_id": image_id, "category_id": int(label) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0,
                })  # fmt: skip
            for x1, y1, x2, y2, score, cls in outputs[OUTPUT_DETECTIONS][: int(outputs[OUTPUT_NUM_DETECTIONS])]:
                self.detections.append({
                    "image_id": image_id, "category_id": int(cls) + 1,
                    "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)], "score": float(score),
                })  # fmt: skip
        if sample.has_semantic and OUTPUT_SEMANTIC in outputs:
            self.has["segmentation"] = True
            labels = sample.semantic.astype(np.int64).ravel()
            pred = outputs[OUTPUT_SEMANTIC].astype(np.int64).ravel()
            keep = labels != IGNORE_INDEX
            k = len(SEGMENTATION_CLASSES)
            self.confusion += np.bincount(labels[keep] * k + pred[keep], minlength=k * k).reshape(k, k)
        if sample.has_depth and OUTPUT_DEPTH in outputs:
            gt = sample.depth
            valid = (gt > self.min_depth) & (gt < self.max_depth)
            if valid.sum() >= 16:
                self.has["depth"] = True
                self.depth_rows.append(depth_errors(gt[valid], outputs[OUTPUT_DEPTH][valid]))

    def summary(self) -> dict:
        result: dict = {"frames": len(self.gt_images)}
        if self.has["detection"]:
            result["detection"] = self._coco()
        if self.has["segmentation"]:
            inter = np.diag(self.confusion).astype(np.float64)
            union = self.confusion.sum(0) + self.confusion.sum(1) - inter
            present = self.confusion.sum(1) > 0  # classes that occur in the ground truth
            iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
            per_class = {n: float(iou[i]) if present[i] else None for i, n in enumerate(SEGMENTATION_CLASSES)}
            result["segmentation"] = {
                "mIoU": float(np.nanmean(np.where(present, iou, np.nan))),
                "pixel_accuracy": float(inter.sum() / max(1, self.confusion.sum())),
                "per_class_IoU": per_class,
            }
        if self.has["depth"]:
            rows = np.stack(self.depth_rows).mean(0)
            result["depth"] = dict(zip(DEPTH_METRICS, (float(v) for v in rows), strict=True))
        return result

    def _coco(self) -> dict:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        gt = COCO()
        gt.dataset = {
            "images": self.gt_images,
            "annotations": self.gt_annotations,
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(DETECTION_CLASSES)],
        }
        with contextlib.redirect_stdout(io.StringIO()):
            gt.createIndex()
            if not self.detections:
                return {"mAP": 0.0, "mAP50": 0.0, "per_class_AP50": {}}
            dt = gt.loadRes(self.detections)
            coco = COCOeval(gt, dt, "bbox")
            coco.params.maxDets = [1, 10, 100]
            coco.evaluate()
            coco.accumulate()
            coco.summarize()
        precision = coco.eval["precision"][0, :, :, :, -1]  # IoU .5, recall, class, area range, 100 dets
        per_class = {}
        for i, name in enumerate(DETECTION_CLASSES):
            p = precision[:, i, 0]
            per_class[name] = float(p[p > -1].mean()) if (p > -1).any() else None
        # AP@.5 by COCO's size (area all / small / medium / large): where the gap to the headline lies
        by_size = {}
        for a, size in enumerate(("small", "medium", "large"), start=1):
            p = precision[:, :, a]
            by_size[f"AP50_{size}"] = float(p[p > -1].mean()) if (p > -1).any() else None
        # COCO's summary: [3:6] AP of small (< 32² px) / medium / large boxes, [8] AR with 100 detections,
        # [9] AR of small boxes (distant objects); -1 where the split has no boxes of that size
        summary = {"AP_small": 3, "AP_medium": 4, "AP_large": 5, "AR100": 8, "AR_small": 9}
        sized = {key: float(coco.stats[i]) if coco.stats[i] >= 0 else None for key, i in summary.items()}
        return {
            "mAP": float(coco.stats[0]), "mAP50": float(coco.stats[1]), **sized, **by_size,
            "per_class_AP50": per_class,
        }  # fmt: skip


DEPTH_METRICS = ("AbsRel", "SqRel", "RMSE", "RMSE_log", "delta1", "delta2", "delta3")


def depth_errors(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    pred = np.clip(pred.astype(np.float64), 1e-3, None)
    gt = gt.astype(np.float64)
    ratio = np.maximum(gt / pred, pred / gt)
    return np.array([
        np.mean(np.abs(gt - pred) / gt),
        np.mean((gt - pred) ** 2 / gt),
        np.sqrt(np.mean((gt - pred) ** 2)),
        np.sqrt(np.mean((np.log(gt) - np.log(pred)) ** 2)),
        np.mean(ratio < 1.25), np.mean(ratio < 1.25**2), np.mean(ratio < 1.25**3),
    ])  # fmt: skip


def onnx_predictor(path: Path) -> tuple[Predictor, int, int]:
    import onnxruntime as ort

    from perception.contract import ModelMetadata
    from perception.export.verify import run_onnx

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map)
    return (lambda images, focal: run_onnx(session, images, focal)), meta.input_height, meta.input_width


def torch_predictor(path: Path) -> tuple[Predictor, int, int]:
    from perception.export.reference import load_trained, reference_outputs

    net, config = load_trained(path)
    return (
        (lambda images, focal: reference_outputs(net, images, focal)),
        config.model.input_height,
        config.model.input_width,
    )


def evaluate(predict: Predictor, samples: Iterable[Sample], batch_size: int = 8) -> dict:
    """Run ``predict`` over already letterboxed samples and score it."""
    evaluator = Evaluator()
    batch: list[Sample] = []

    def flush() -> None:
        images = np.stack([s.image.transpose(2, 0, 1) for s in batch])
        focal = np.array([s.camera.fx for s in batch], np.float32)
        outputs = predict(images, focal)
        for i, sample in enumerate(batch):
            evaluator.add(sample, {k: v[i] for k, v in outputs.items()})
        batch.clear()

    for sample in samples:
        batch.append(sample)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return evaluator.summary()


def held_out_samples(dataset: str, root: Path | None, split: str, count: int, height: int, width: int, seed: int = 0):
    """The first ``count`` samples of a held-out split, letterboxed to the model input."""
    from perception.data.registry import open_dataset
    from perception.data.transforms import Letterbox

    source = open_dataset(dataset, root, split, length=count, size=(height, width), seed=seed)
    letterbox = Letterbox(height, width)
    rng = np.random.default_rng(0)
    for i in range(min(count, len(source))):
        yield letterbox(source[i], rng)


def markdown_table(metrics: dict) -> str:
    lines = ["| task | metric | value |", "| --- | --- | --- |"]
    for task in ("detection", "segmentation", "depth"):
        for key, value in metrics.get(task, {}).items():
            if isinstance(value, dict):
                for name, v in value.items():
                    lines.append(f"| {task} | {key}: {name} | {'—' if v is None else f'{v:.3f}'} |")
            else:
                lines.append(f"| {task} | {key} | {'—' if value is None else f'{value:.4f}'} |")
    return "\n".join(lines)


def eval_command(args: argparse.Namespace) -> int:
    predictor_of = onnx_predictor if args.model.suffix == ".onnx" else torch_predictor
    predict, height, width = predictor_of(args.model)
    samples = held_out_samples(args.dataset, args.root, args.split, args.count, height, width)
    metrics = evaluate(predict, samples)
    metrics["data"] = {"dataset": args.dataset, "split": args.split, "resolution": [height, width]}
    table = markdown_table(metrics)
    print(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        (args.out / "metrics.md").write_text(table + "\n")
    return 0
