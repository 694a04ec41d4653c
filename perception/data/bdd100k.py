"""BDD100K in its released layout: images, detection JSON, drivable-area and lane masks.

    {root}/images/100k/{split}/{name}.jpg                  1280x720 RGB
    {root}/labels/det_20/det_{split}.json                  det_20: [{name, labels: [{category,
                                                           attributes, box2d: {x1, y1, x2, y2}}]}]
      (or the older {root}/labels/bdd100k_labels_images_{split}.json, same fields)
    {root}/labels/drivable/masks/{split}/{stem}.png        0 direct, 1 alternative, 2 background
    {root}/labels/lane/masks/{split}/{stem}.png            bit fields, background 255 (taxonomy)
      (the ``labels/`` prefix may be left out: {root}/drivable/masks/..., {root}/lane/masks/...)

Targets: boxes (riders joined with their two-wheelers into cyclists), semantic with only road
(drivable) and lane_marking labelled and every other pixel IGNORE_INDEX, no depth (``None``).
BDD100K publishes no calibration: the camera is nominal (65° horizontal field of view, principal
point at the centre) and ``extras["intrinsics_known"]`` is False.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from perception.data import taxonomy
from perception.data.readers import check_split_exists, read_plane, read_rgb
from perception.data.sample import Camera, Sample

NOMINAL_HFOV_DEG = 65.0


def nominal_camera(width: int, height: int) -> Camera:
    fx = (width / 2) / math.tan(math.radians(NOMINAL_HFOV_DEG) / 2)
    return Camera(fx=fx, fy=fx, cx=(width - 1) / 2, cy=(height - 1) / 2)


def _first_existing(candidates: list[Path]) -> Path | None:
    return next((p for p in candidates if p.exists()), None)


def parse_frame(labels: list[dict] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(boxes [N, 4], labels [N], truncation [N], occlusion [N]) in project classes from one
    frame's label list; entries without box2d (old-format lane/drivable polygons) are skipped."""
    direct: list[tuple[list[float], int, float, float]] = []
    riders: list[tuple[list[float], float, float]] = []
    wheels: list[list[float]] = []
    for obj in labels or []:
        box = obj.get("box2d")
        if box is None:
            continue
        xyxy = [float(box["x1"]), float(box["y1"]), float(box["x2"]), float(box["y2"])]
        attrs = obj.get("attributes") or {}
        trunc, occl = float(bool(attrs.get("truncated"))), float(bool(attrs.get("occluded")))
        category = obj.get("category", "")
        if category in taxonomy.BDD_TO_DET:
            direct.append((xyxy, taxonomy.det_label(taxonomy.BDD_TO_DET[category]), trunc, occl))
        elif category in taxonomy.BDD_RIDER:
            riders.append((xyxy, trunc, occl))
        elif category in taxonomy.BDD_TWO_WHEELERS:
            wheels.append(xyxy)
    cyclists = taxonomy.pair_riders(
        np.asarray([r[0] for r in riders], np.float32).reshape(-1, 4), np.asarray(wheels, np.float32).reshape(-1, 4)
    )
    cyclist = taxonomy.det_label("cyclist")
    rows = direct + [(list(b), cyclist, r[1], r[2]) for b, r in zip(cyclists, riders, strict=True)]
    return (
        np.asarray([r[0] for r in rows], dtype=np.float32).reshape(-1, 4),
        np.asarray([r[1] for r in rows], dtype=np.int64),
        np.asarray([r[2] for r in rows], dtype=np.float32),
        np.asarray([r[3] for r in rows], dtype=np.float32),
    )


class Bdd100kDataset:
    """BDD100K ``split`` (train, val or test) under ``root``; see the module docstring."""

    def __init__(self, root: Path, split: str, labels_json: Path | None = None):
        self.root = Path(root)
        self.split = split
        image_dir = self.root / "images" / "100k" / split
        check_split_exists(image_dir, "BDD100K images")
        self.images = sorted(image_dir.glob("*.jpg"))
        labels_json = labels_json or _first_existing(
            [
                self.root / "labels" / "det_20" / f"det_{split}.json",
                self.root / "labels" / f"bdd100k_labels_images_{split}.json",
            ]
        )
        self.frames: dict[str, dict] | None = None
        if labels_json is not None:
            self.frames = {frame["name"]: frame for frame in json.loads(Path(labels_json).read_text())}

    def __len__(self) -> int:
        return len(self.images)

    def _mask(self, task: str, stem: str) -> np.ndarray | None:
        rel = Path(task) / "masks" / self.split / f"{stem}.png"
        path = _first_existing([self.root / "labels" / rel, self.root / rel])
        return None if path is None else read_plane(path)

    def __getitem__(self, index: int) -> Sample:
        path = self.images[index]
        image = read_rgb(path)
        height, width = image.shape[:2]
        extras: dict = {"source": "bdd100k", "id": path.stem, "intrinsics_known": False}

        boxes = labels = None
        if self.frames is not None and path.name in self.frames:
            frame = self.frames[path.name]
            boxes, labels, extras["truncation"], extras["occlusion"] = parse_frame(frame.get("labels"))
            if frame.get("attributes"):
                extras["attributes"] = frame["attributes"]  # weather, scene, timeofday

        drivable, lane = self._mask("drivable", path.stem), self._mask("lane", path.stem)
        semantic = None if drivable is None and lane is None else taxonomy.bdd_semantic(drivable, lane, (height, width))
        return Sample(image, nominal_camera(width, height), boxes, labels, semantic, None, extras)
