"""Drawing an answer over its image: segmentation blended in, labelled boxes, a depth colour map."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from perception.client.answers import decode_depth, decode_segmentation

BOX_COLOURS = [(255, 64, 64), (64, 200, 255), (255, 200, 0), (120, 255, 80), (255, 80, 220), (0, 255, 200),
               (255, 140, 0), (170, 120, 255)]  # fmt: skip


def colour_depth(metres: np.ndarray) -> np.ndarray:
    """Inverse depth through the Turbo colour map (near: red, far: blue), RGB uint8; no depth: black."""
    valid = np.isfinite(metres) & (metres > 0)
    out = np.zeros((*metres.shape, 3), np.uint8)
    if not valid.any():
        return out
    inverse = 1.0 / metres[valid]
    lo, hi = np.percentile(inverse, [2, 98])
    scaled = np.zeros(metres.shape, np.uint8)
    scaled[valid] = np.clip((inverse - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
    coloured = cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    out[valid] = coloured[valid]
    return out


def render_overlay(image_rgb: np.ndarray, frame: dict, alpha: float = 0.45) -> np.ndarray:
    """The frame as the model saw it, RGB uint8: segmentation colours (the answer's legend) blended
    into the image, boxes with labels on top, and the depth colour map to the right when present."""
    h, w = image_rgb.shape[:2]
    if (frame["width"], frame["height"]) != (w, h):
        raise ValueError(f"the image is {w}x{h} but the answer is for {frame['width']}x{frame['height']}")
    canvas = image_rgb.copy()
    if seg := frame.get("segmentation"):
        class_map = cv2.resize(decode_segmentation(seg), (w, h), interpolation=cv2.INTER_NEAREST)
        lut = np.zeros((256, 3), np.uint8)
        for entry in seg["classes"]:
            lut[entry["id"]] = entry["color"]
        canvas = cv2.addWeighted(canvas, 1 - alpha, lut[class_map], alpha, 0)
    scale = max(w, h) / 1280
    thickness, font_scale = max(1, round(2 * scale)), max(0.4, 0.6 * scale)
    for det in frame.get("detections") or []:
        colour = BOX_COLOURS[det["class_id"] % len(BOX_COLOURS)]
        x1, y1, x2, y2 = (round(v) for v in det["box"])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        label = f"{det['class_name']} {det['score']:.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        top = max(y1 - th - base - 2, 0)
        cv2.rectangle(canvas, (x1, top), (x1 + tw + 4, top + th + base + 2), colour, -1)
        cv2.putText(canvas, label, (x1 + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 1,
                    cv2.LINE_AA)  # fmt: skip
    if depth := frame.get("depth"):
        coloured = colour_depth(cv2.resize(decode_depth(depth), (w, h), interpolation=cv2.INTER_LINEAR))
        canvas = np.concatenate([canvas, coloured], axis=1)
    return canvas


def write_png(path: Path, image_rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
