"""The metrics ``perception eval`` reports. Detection: COCO mAP@[.5:.95] and mAP@.5 (pycocotools), by
class and by box size. Segmentation: per-class IoU and mIoU from a confusion matrix. Depth: AbsRel,
SqRel, RMSE, RMSE-log and δ < 1.25, 1.25², 1.25³ over valid pixels, averaged per image (the Eigen et
al. protocol), and where the model also segments, the depth's scale by predicted class: the median of
truth / prediction over the pixels the model gives each class (where a real data set's metric depth
goes wrong: the road's scale may be right and the façades' twice too far). Which classes, boxes and
depths count is the data set's ``Protocol`` (``protocols``)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from perception.classes import DETECTION_CLASSES, IGNORE_INDEX, SEGMENTATION_CLASSES, det_index, seg_index
from perception.contract import OUTPUT_DEPTH, OUTPUT_DETECTIONS, OUTPUT_NUM_DETECTIONS, OUTPUT_SEMANTIC
from perception.data.sample import Sample
from perception.evaluate.protocols import SYNTHETIC, Protocol

# log(truth / prediction) histogram per predicted class: medians to 1 % without keeping the pixels
LOG_RATIO_BINS = np.linspace(-4.0, 4.0, 801)
MIN_SCALE_PIXELS = 100  # a class needs this many scored depth pixels for its scale to be reported


class Evaluator:
    """Accumulates predictions against targets under ``protocol``, then ``summary()``."""

    def __init__(self, protocol: Protocol = SYNTHETIC):
        self.protocol = protocol
        self.min_depth, self.max_depth = protocol.depth_range
        self.seg_lut = protocol.seg_lut()
        self.gt_images: list[dict] = []
        self.gt_annotations: list[dict] = []
        self.detections: list[dict] = []
        self.confusion = np.zeros((len(SEGMENTATION_CLASSES),) * 2, np.int64)
        self.depth_rows: list[np.ndarray] = []
        self.depth_pixels = 0
        self.log_ratios = np.zeros((len(SEGMENTATION_CLASSES), len(LOG_RATIO_BINS) - 1), np.int64)
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
                # a box too short to score is an ignore region: COCO's iscrowd (pycocotools overwrites "ignore")
                crowd = int(y2 - y1 < self.protocol.min_box_height)
                self.gt_annotations.append({
                    "id": len(self.gt_annotations) + 1, "image_id": image_id, "category_id": int(label) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": crowd,
                })  # fmt: skip
            for x1, y1, x2, y2, score, cls in outputs[OUTPUT_DETECTIONS][: int(outputs[OUTPUT_NUM_DETECTIONS])]:
                self.detections.append({
                    "image_id": image_id, "category_id": int(cls) + 1,
                    "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)], "score": float(score),
                })  # fmt: skip
        if sample.has_semantic and OUTPUT_SEMANTIC in outputs:
            self.has["segmentation"] = True
            labels = self.seg_lut[sample.semantic.astype(np.int64).ravel()]
            pred = self.seg_lut[outputs[OUTPUT_SEMANTIC].astype(np.int64).ravel()]
            keep = labels != IGNORE_INDEX
            k = len(SEGMENTATION_CLASSES)
            self.confusion += np.bincount(labels[keep] * k + pred[keep], minlength=k * k).reshape(k, k)
        if sample.has_depth and OUTPUT_DEPTH in outputs:
            gt = sample.depth
            valid = (gt > self.min_depth) & (gt < self.max_depth)
            if valid.sum() >= 16:
                self.has["depth"] = True
                self.depth_pixels += int(valid.sum())
                pred = outputs[OUTPUT_DEPTH][valid]
                row = depth_errors(gt[valid], pred)
                if self.protocol.median_scaled:
                    row = np.append(row, depth_errors(gt[valid], median_scaled(gt[valid], pred))[0])
                self.depth_rows.append(row)
                if OUTPUT_SEMANTIC in outputs:
                    self._add_log_ratios(outputs[OUTPUT_SEMANTIC][valid], gt[valid], pred)

    def _add_log_ratios(self, predicted: np.ndarray, truth: np.ndarray, depth: np.ndarray) -> None:
        """Histogram log(truth / prediction) of the scored depth pixels by their predicted class."""
        bins = len(LOG_RATIO_BINS) - 1
        log_ratio = np.log(truth / np.maximum(depth, 1e-6))
        which = np.clip(np.searchsorted(LOG_RATIO_BINS, log_ratio) - 1, 0, bins - 1)
        keep = predicted < len(SEGMENTATION_CLASSES)
        flat = predicted[keep].astype(np.int64) * bins + which[keep]
        self.log_ratios += np.bincount(flat, minlength=self.log_ratios.size).reshape(self.log_ratios.shape)

    def _scale_by_predicted_class(self) -> dict[str, float]:
        """Median truth / prediction of each predicted class with at least MIN_SCALE_PIXELS pixels."""
        centres = (LOG_RATIO_BINS[:-1] + LOG_RATIO_BINS[1:]) / 2
        scales = {}
        for name, counts in zip(SEGMENTATION_CLASSES, self.log_ratios, strict=True):
            if counts.sum() >= MIN_SCALE_PIXELS:
                median = centres[np.searchsorted(np.cumsum(counts), counts.sum() / 2)]
                scales[name] = float(np.exp(median))
        return scales

    def summary(self) -> dict:
        result: dict = {"frames": len(self.gt_images)}
        counts = self.protocol.at_source  # real data sets also say how much was scored
        if self.has["detection"]:
            result["detection"] = self._coco()
            if counts:
                ignored = sum(a["iscrowd"] for a in self.gt_annotations if self._scored_category(a))
                scored = sum(1 for a in self.gt_annotations if self._scored_category(a)) - ignored
                result["detection"] |= {"boxes_scored": scored, "boxes_ignored": ignored}
        if self.has["segmentation"]:
            result["segmentation"] = self._segmentation()
        if self.has["depth"]:
            rows = np.stack(self.depth_rows).mean(0)
            names = DEPTH_METRICS + (("AbsRel_median_scaled",) if self.protocol.median_scaled else ())
            result["depth"] = dict(zip(names, (float(v) for v in rows), strict=True))
            if counts:
                result["depth"]["pixels"] = self.depth_pixels
            if scales := self._scale_by_predicted_class():
                result["depth"]["scale_by_predicted_class"] = scales
        return result

    def _scored_category(self, annotation: dict) -> bool:
        return DETECTION_CLASSES[annotation["category_id"] - 1] in self.protocol.scored_det

    def _segmentation(self) -> dict:
        """IoU per scored class (None where the ground truth lacks it), their mean, and where each
        scored class's labelled pixels went: ``confusion[label][predicted]``, shares of the label's
        pixels by predicted scored class (a row sums to less than 1 where some went to classes the
        protocol does not score)."""
        scored = [seg_index(n) for n in self.protocol.scored_seg]
        inter = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(0) + self.confusion.sum(1) - inter
        present = self.confusion.sum(1) > 0  # classes that occur in the ground truth
        iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
        shares = self.confusion / np.maximum(self.confusion.sum(1, keepdims=True), 1)  # of each label's pixels
        return {
            "mIoU": float(np.nanmean(np.where(present, iou, np.nan)[scored])),
            "pixel_accuracy": float(inter[scored].sum() / max(1, self.confusion.sum())),
            "per_class_IoU": {SEGMENTATION_CLASSES[i]: float(iou[i]) if present[i] else None for i in scored},
            "confusion": {
                SEGMENTATION_CLASSES[i]: {SEGMENTATION_CLASSES[j]: float(shares[i, j]) for j in scored}
                for i in scored
                if present[i]
            },
        }

    def _coco(self) -> dict:
        classes = self.protocol.scored_det
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
            coco.params.catIds = [det_index(n) + 1 for n in classes]
            coco.evaluate()
            coco.accumulate()
            coco.summarize()
        precision = coco.eval["precision"][0, :, :, :, -1]  # IoU .5, recall, class, area range, 100 dets
        return {
            "mAP": float(coco.stats[0]), "mAP50": float(coco.stats[1]), **sized_summary(coco.stats),
            **ap50_by_size(precision), "per_class_AP50": ap50_per_class(precision, classes),
        }  # fmt: skip


def _mean_precision(p: np.ndarray) -> float | None:
    """Mean of COCO precision entries, -1 (no ground truth) left out; None when all are."""
    return float(p[p > -1].mean()) if (p > -1).any() else None


def ap50_per_class(precision: np.ndarray, classes: tuple[str, ...] = DETECTION_CLASSES) -> dict[str, float | None]:
    """AP@.5 of each scored detection class from COCO's precision at IoU .5 [recall, class, area]."""
    return {name: _mean_precision(precision[:, i, 0]) for i, name in enumerate(classes)}


def ap50_by_size(precision: np.ndarray) -> dict[str, float | None]:
    """AP@.5 by COCO's size (area all / small / medium / large): where the gap to the headline lies."""
    return {f"AP50_{size}": _mean_precision(precision[:, :, a])
            for a, size in enumerate(("small", "medium", "large"), start=1)}  # fmt: skip


def sized_summary(stats: np.ndarray) -> dict[str, float | None]:
    """COCO's summary: [3:6] AP of small (< 32² px) / medium / large boxes, [8] AR with 100 detections,
    [9] AR of small boxes (distant objects); None where the split has no boxes of that size (-1)."""
    summary = {"AP_small": 3, "AP_medium": 4, "AP_large": 5, "AR100": 8, "AR_small": 9}
    return {key: float(stats[i]) if stats[i] >= 0 else None for key, i in summary.items()}


DEPTH_METRICS = ("AbsRel", "SqRel", "RMSE", "RMSE_log", "delta1", "delta2", "delta3")


def median_scaled(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """The prediction scaled by median(gt) / median(pred): only the depths' relative layout is scored
    (the Eigen et al. / monodepth convention for models without a known scale)."""
    pred = pred.astype(np.float64)
    return pred * (np.median(gt) / max(float(np.median(pred)), 1e-6))


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


def markdown_table(metrics: dict) -> str:
    """The figures as one Markdown table, and the segmentation confusion, if any, as a second one."""
    lines = ["| task | metric | value |", "| --- | --- | --- |"]
    for task in ("detection", "segmentation", "depth"):
        for key, value in metrics.get(task, {}).items():
            if key == "confusion":
                continue
            if isinstance(value, dict):
                for name, v in value.items():
                    lines.append(f"| {task} | {key}: {name} | {'—' if v is None else f'{v:.3f}'} |")
            elif isinstance(value, int):  # counts: boxes, pixels
                lines.append(f"| {task} | {key} | {value} |")
            else:
                lines.append(f"| {task} | {key} | {'—' if value is None else f'{value:.4f}'} |")
    if confusion := metrics.get("segmentation", {}).get("confusion"):
        lines += ["", confusion_table(confusion)]
    return "\n".join(lines)


def confusion_table(confusion: dict[str, dict[str, float]]) -> str:
    """Rows: the labelled class; columns: the predicted one; cells: shares of the row's pixels."""
    predicted = list(next(iter(confusion.values())))
    lines = [f"| label \\ predicted | {' | '.join(predicted)} |", "| --- |" + " --- |" * len(predicted)]
    for label, row in confusion.items():
        lines.append(f"| {label} | {' | '.join(f'{row[p]:.2f}' for p in predicted)} |")
    return "\n".join(lines)
