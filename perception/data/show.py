"""``perception data show``: one sample's image with boxes, its semantic colours and its depth,
side by side in a PNG, so a person can check the labels by eye."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from perception.classes import DETECTION_CLASSES, SEGMENTATION_PALETTE
from perception.data.registry import DATASET_NAMES, open_dataset
from perception.data.sample import Sample
from perception.data.transforms import Letterbox

# One colour per detection class (RGB), distinct from each other on a road scene.
BOX_COLOURS = (
    (0, 160, 255),
    (255, 140, 0),
    (255, 215, 0),
    (220, 20, 60),
    (190, 60, 255),
    (0, 220, 120),
    (255, 255, 255),
)
_IGNORE_COLOUR = (0, 0, 0)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _caption(panel: np.ndarray, text: str) -> None:
    cv2.putText(panel, text, (6, 18), _FONT, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(panel, text, (6, 18), _FONT, 0.5, (255, 255, 255), 1, cv2.LINE_AA)


def _missing(shape: tuple[int, ...], what: str) -> np.ndarray:
    panel = np.full(shape, 40, dtype=np.uint8)
    _caption(panel, f"no {what} in this sample")
    return panel


def draw_boxes(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    out = image.copy()
    for (x1, y1, x2, y2), label in zip(boxes.round().astype(int), labels, strict=True):
        colour = BOX_COLOURS[int(label) % len(BOX_COLOURS)]
        cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), colour, 2)
        cv2.putText(out, DETECTION_CLASSES[int(label)], (x1, max(10, y1 - 3)), _FONT, 0.4, colour, 1, cv2.LINE_AA)
    return out


def colour_semantic(semantic: np.ndarray) -> np.ndarray:
    """RGB from class indices with SEGMENTATION_PALETTE; ignored pixels black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[:] = _IGNORE_COLOUR
    lut[: len(SEGMENTATION_PALETTE)] = SEGMENTATION_PALETTE
    return lut[semantic]


def colour_depth(depth: np.ndarray) -> np.ndarray:
    """RGB turbo colour map of inverse depth (near = warm); invalid pixels black. Sparse depth
    (LiDAR) is dilated a little so single points are visible."""
    valid = depth > 0
    if valid.mean() < 0.2:
        depth = cv2.dilate(np.where(valid, 1.0 / np.maximum(depth, 1e-6), 0).astype(np.float32), np.ones((3, 3)))
        inverse, valid = depth, depth > 0
    else:
        inverse = np.where(valid, 1.0 / np.maximum(depth, 1e-6), 0.0)
    if not valid.any():
        return np.zeros((*depth.shape, 3), dtype=np.uint8)
    lo, hi = np.percentile(inverse[valid], (2, 98))
    if hi - lo < 1e-6:  # nearly constant: stretch the full range instead
        lo, hi = inverse[valid].min(), inverse[valid].max()
    norm = np.clip((inverse - lo) / max(hi - lo, 1e-9), 0, 1)
    rgb = cv2.cvtColor(cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    rgb[~valid] = 0
    return rgb


def render_sample(sample: Sample, max_panel_width: int | None = 960) -> np.ndarray:
    """uint8 RGB [H, 3W, 3]: image with boxes and class names | semantic colours | depth."""
    height, width = sample.size
    if max_panel_width and width > max_panel_width:
        new_h = max(1, round(height * max_panel_width / width))
        sample = Letterbox(new_h, max_panel_width)(sample)
    shape = sample.image.shape
    image = sample.image if sample.boxes is None else draw_boxes(sample.image, sample.boxes, sample.labels)
    image = np.ascontiguousarray(image)
    _caption(image, f"{sample.extras.get('source', '')} {sample.extras.get('id', '')}".strip() or "image")
    if sample.semantic is not None:
        semantic = colour_semantic(sample.semantic)
        _caption(semantic, "semantic (black: ignore)")
    else:
        semantic = _missing(shape, "semantic labels")
    if sample.depth is not None:
        depth = colour_depth(sample.depth)
        valid = sample.depth[sample.depth > 0]
        text = f"depth {valid.min():.1f}-{valid.max():.1f} m" if valid.size else "depth (none valid)"
        _caption(depth, text)
    else:
        depth = _missing(shape, "depth")
    return np.concatenate([image, semantic, depth], axis=1)


def show_command(args: argparse.Namespace) -> int:
    name, root = args.dataset, args.root
    if name not in DATASET_NAMES and Path(name).is_dir():
        name, root = "synthdir", Path(name)  # --dataset may name a folder written by `data synth`
    dataset = open_dataset(name, root, args.split, length=args.index + 1)
    if not 0 <= args.index < len(dataset):
        raise SystemExit(f"--index {args.index} out of range: the data set has {len(dataset)} samples")
    canvas = render_sample(dataset[args.index])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)):
        raise SystemExit(f"could not write {out}")
    print(f"wrote {out} ({canvas.shape[1]}x{canvas.shape[0]})")
    return 0
