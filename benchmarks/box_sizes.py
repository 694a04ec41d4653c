"""How small the held-out boxes are: the share of ground-truth boxes under each height, and by
COCO's area buckets, on the frames `perception eval` scores (the synthetic test split at the
bundled input size). Explains the detection floor's distance: most boxes are a few pixels tall.
With ``--model`` it also prints, per height bucket, the share of boxes the model finds (a
same-class detection at IoU >= 0.5 and the service's default score >= 0.25). ``--iou`` and
``--score`` change those two bars: how the share found moves with each says whether the misses are
boxes placed too loosely or found with too little confidence.

    python benchmarks/box_sizes.py [--count 500] [--size 640x384] [--model models/drivenet]
    python benchmarks/box_sizes.py --model models/drivenet --iou 0.3 --score 0.05

``--model`` takes a model folder (its newest version, as the service picks it), a model.onnx or a
checkpoint.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou

from perception.contract import OUTPUT_DETECTIONS, OUTPUT_NUM_DETECTIONS, resolve_model_path
from perception.data.sample import Sample
from perception.evaluate import Predictor, held_out_samples, onnx_predictor, torch_predictor

HEIGHT_EDGES = (0, 8, 12, 16, 25, 32, 10_000)  # 25: KITTI's smallest scored box height (375-px-tall images)
SCORE = 0.25  # the service's default score threshold (service/pipeline.py)
IOU = 0.5  # the overlap mAP@.5 asks of a detection


def found(
    gt: np.ndarray, labels: np.ndarray, det: np.ndarray, iou_min: float = IOU, score: float = SCORE
) -> np.ndarray:
    """Which ground-truth boxes a same-class detection scoring >= ``score`` overlaps at IoU >= ``iou_min``
    (greedy, one each)."""
    hit = np.zeros(len(gt), bool)
    det = det[det[:, 4] >= score]
    if not len(det) or not len(gt):
        return hit
    iou = box_iou(torch.from_numpy(gt), torch.from_numpy(det[:, :4])).numpy()
    iou[labels[:, None] != det[None, :, 5].astype(int)] = 0
    for d in np.argsort(-det[:, 4]):
        g = int(np.argmax(np.where(hit, 0, iou[:, d])))
        if iou[g, d] >= iou_min and not hit[g]:
            hit[g] = True
    return hit


def recall_hits(predict: Predictor, sample: Sample, iou_min: float = IOU, score: float = SCORE) -> np.ndarray:
    """Run the model on one held-out frame and mark its ground-truth boxes found or not."""
    out = predict(sample.image.transpose(2, 0, 1)[None], np.array([sample.camera.fx], np.float32))
    det = out[OUTPUT_DETECTIONS][0][: int(out[OUTPUT_NUM_DETECTIONS][0])]
    return found(sample.boxes.astype(np.float32), sample.labels, det, iou_min, score)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--size", default="640x384", help="input WxH (ignored with --model: its own size)")
    parser.add_argument("--model", type=Path, help="model folder, model.onnx or checkpoint: also recall by height")
    parser.add_argument("--iou", type=float, default=IOU, help="IoU a detection needs to find a box")
    parser.add_argument("--score", type=float, default=SCORE, help="score a detection needs to count")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    predict = None
    if args.model:
        model = resolve_model_path(args.model)
        predict, height, width = (onnx_predictor if model.suffix == ".onnx" else torch_predictor)(model)
    samples = [s for s in held_out_samples("synthetic", None, "test", args.count, height, width) if s.boxes is not None]
    boxes = np.concatenate([s.boxes for s in samples])
    hits = np.concatenate([recall_hits(predict, s, args.iou, args.score) for s in samples]) if predict else None
    heights = boxes[:, 3] - boxes[:, 1]
    areas = heights * (boxes[:, 2] - boxes[:, 0])
    per_frame = len(boxes) / len(samples)
    print(f"{len(boxes)} boxes in {len(samples)} test frames at {width}x{height} ({per_frame:.1f} a frame)")
    if predict:
        print(f"found: a same-class detection at IoU >= {args.iou} and score >= {args.score}")
    print("| box height | share | cumulative |" + (" found |" if predict else ""))
    print("| --- | --- | --- |" + (" --- |" if predict else ""))
    for low, high in itertools.pairwise(HEIGHT_EDGES):
        inside = (heights >= low) & (heights < high)
        label = f"{low}–{high} px" if high < HEIGHT_EDGES[-1] else f">= {low} px"
        row = f"| {label} | {inside.mean():.1%} | {np.mean(heights < high):.1%} |"
        print(row + (f" {hits[inside].mean():.1%} |" if predict else ""))
    if predict:
        print(f"| all | 100% | | {hits.mean():.1%} |")
    print(f"\nCOCO area buckets: small (< 32²) {np.mean(areas < 32**2):.1%}, "
          f"medium {np.mean((areas >= 32**2) & (areas < 96**2)):.1%}, large {np.mean(areas >= 96**2):.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
