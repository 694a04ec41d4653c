"""Cityscapes in its released layout: fine labels, instances, disparity and camera calibration.

    {root}/leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png   8-bit RGB
    {root}/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png    uint8 label ids 0-33
    {root}/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_instanceIds.png uint16: class*1000+k
                                                                             for instances, the
                                                                             label id elsewhere
    {root}/disparity/{split}/{city}/{city}_{seq}_{frame}_disparity.png       uint16, d = (p-1)/256
    {root}/camera/{split}/{city}/{city}_{seq}_{frame}_camera.json            baseline, fx, fy, u0, v0

Targets: semantic (mapped by ``taxonomy``), boxes from the instance map (riders joined with their
bicycle/motorcycle into cyclists; traffic lights and signs, which Cityscapes does not annotate
as instances, from connected components of the label map), and depth = baseline·fx / d in metres.
Missing gtFine or disparity files leave that target ``None``. The ``test`` split's gtFine files
are placeholders: do not train or evaluate on them.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from perception.data import taxonomy
from perception.data.readers import check_split_exists, read_plane, read_rgb
from perception.data.sample import Camera, Sample

IMAGE_SUFFIX = "_leftImg8bit.png"

# Typical Cityscapes calibration (frame of aachen), used only when a camera JSON is missing.
NOMINAL_CAMERA = Camera(fx=2262.52, fy=2265.30, cx=1096.98, cy=513.137, height_m=1.22, pitch_rad=0.038, roll_rad=0.0)

# Label ids whose disparity is not the scene's: the car's own bonnet, image borders, sky.
_NO_DEPTH_IDS = tuple(taxonomy.CITYSCAPES_ID[n] for n in ("ego vehicle", "rectification border", "out of roi", "sky"))


def disparity_to_depth(raw: np.ndarray, baseline_m: float, fx: float, max_depth_m: float) -> np.ndarray:
    """Depth in metres from a Cityscapes disparity PNG: d = (p - 1) / 256, depth = b·fx / d.
    p = 0 marks an invalid pixel (p = 1 means zero disparity, infinitely far); both give 0,
    as does anything beyond ``max_depth_m`` where a quarter-pixel of disparity is all noise."""
    raw = raw.astype(np.float32)
    depth = np.zeros(raw.shape, dtype=np.float32)
    valid = raw > 1
    depth[valid] = baseline_m * fx / ((raw[valid] - 1.0) / 256.0)
    depth[depth > max_depth_m] = 0.0
    return depth


def read_camera(path: Path) -> tuple[Camera, float]:
    """(intrinsics and pose, stereo baseline in metres) from a Cityscapes camera JSON."""
    calib = json.loads(path.read_text())
    intr, extr = calib["intrinsic"], calib["extrinsic"]
    camera = Camera(
        fx=float(intr["fx"]),
        fy=float(intr["fy"]),
        cx=float(intr["u0"]),
        cy=float(intr["v0"]),
        height_m=float(extr["z"]) if "z" in extr else None,
        pitch_rad=float(extr["pitch"]) if "pitch" in extr else None,  # positive: looking down
        roll_rad=float(extr["roll"]) if "roll" in extr else None,
    )
    return camera, float(extr["baseline"])


def instance_boxes(instances: np.ndarray) -> dict[str, np.ndarray]:
    """Boxes [N, 4] (x1, y1, x2, y2, pixel edges) per Cityscapes class name from an instance map.
    Ids below 1000 are groups ("cargroup") or stuff, not single objects, and give no box."""
    flat = np.flatnonzero(instances.ravel() >= 1000)
    if flat.size == 0:
        return {}
    ids = instances.ravel()[flat]
    order = np.argsort(ids, kind="stable")  # one pass over instance pixels, grouped by id
    ids, flat = ids[order], flat[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ys, xs = np.divmod(flat, instances.shape[1])
    extents = np.stack(
        [
            np.minimum.reduceat(xs, starts),
            np.minimum.reduceat(ys, starts),
            np.maximum.reduceat(xs, starts) + 1,
            np.maximum.reduceat(ys, starts) + 1,
        ],
        axis=1,
    ).astype(np.float32)
    names = {label_id: name for label_id, name, _ in taxonomy.CITYSCAPES_LABELS}
    boxes: dict[str, list[np.ndarray]] = {}
    for inst_id, box in zip(ids[starts], extents, strict=True):
        name = names.get(int(inst_id) // 1000)
        if name is not None:
            boxes.setdefault(name, []).append(box)
    return {k: np.stack(v).reshape(-1, 4) for k, v in boxes.items()}


def component_boxes(mask: np.ndarray, min_area: int) -> np.ndarray:
    """Boxes [N, 4] of the 8-connected components of a boolean mask with at least min_area pixels."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    rows = [[x, y, x + w, y + h] for x, y, w, h, area in stats[1:count] if area >= min_area]  # row 0 is the background
    return np.asarray(rows, dtype=np.float32).reshape(-1, 4)


def cityscapes_detections(label_ids: np.ndarray, instances: np.ndarray, min_area: int) -> tuple[np.ndarray, np.ndarray]:
    """(boxes float32 [N, 4], labels int64 [N]) in project classes."""
    per_class = instance_boxes(instances)
    for name in ("traffic light", "traffic sign"):
        per_class[name] = component_boxes(label_ids == taxonomy.CITYSCAPES_ID[name], min_area)
    boxes, labels = [], []
    for name, det_name in taxonomy.CITYSCAPES_TO_DET.items():
        found = per_class.get(name, np.zeros((0, 4), np.float32))
        boxes.append(found)
        labels += [taxonomy.det_label(det_name)] * len(found)
    riders = np.concatenate([per_class.get(n, np.zeros((0, 4), np.float32)) for n in taxonomy.CITYSCAPES_RIDER])
    wheels = np.concatenate([per_class.get(n, np.zeros((0, 4), np.float32)) for n in taxonomy.CITYSCAPES_TWO_WHEELERS])
    cyclists = taxonomy.pair_riders(riders, wheels)
    boxes.append(cyclists)
    labels += [taxonomy.det_label("cyclist")] * len(cyclists)
    return np.concatenate(boxes).astype(np.float32), np.asarray(labels, dtype=np.int64)


class CityscapesDataset:
    """Cityscapes ``split`` (train, val or test) under ``root``; see the module docstring."""

    def __init__(self, root: Path, split: str, max_depth_m: float = 200.0, min_component_area: int = 16):
        self.root = Path(root)
        self.split = split
        self.max_depth_m = max_depth_m
        self.min_component_area = min_component_area
        image_dir = self.root / "leftImg8bit" / split
        check_split_exists(image_dir, "Cityscapes images")
        self.images = sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}"))
        self._lut = taxonomy.cityscapes_semantic_lut()

    def __len__(self) -> int:
        return len(self.images)

    def _path(self, image: Path, folder: str, suffix: str) -> Path:
        prefix = image.name[: -len(IMAGE_SUFFIX)]
        return self.root / folder / self.split / image.parent.name / f"{prefix}_{suffix}"

    def __getitem__(self, index: int) -> Sample:
        path = self.images[index]
        image = read_rgb(path)
        extras: dict = {"source": "cityscapes", "id": path.name[: -len(IMAGE_SUFFIX)], "city": path.parent.name}

        camera_path = self._path(path, "camera", "camera.json")
        baseline = None
        if camera_path.is_file():
            camera, baseline = read_camera(camera_path)
        else:
            camera, extras["intrinsics_known"] = NOMINAL_CAMERA, False

        semantic = boxes = labels = label_ids = None
        labels_path = self._path(path, "gtFine", "gtFine_labelIds.png")
        if labels_path.is_file():
            label_ids = read_plane(labels_path)
            semantic = self._lut[label_ids]
            instances_path = self._path(path, "gtFine", "gtFine_instanceIds.png")
            if instances_path.is_file():
                instances = read_plane(instances_path).astype(np.int32)
                boxes, labels = cityscapes_detections(label_ids, instances, self.min_component_area)
                extras["instance"] = instances

        depth = None
        disparity_path = self._path(path, "disparity", "disparity.png")
        if disparity_path.is_file() and baseline is not None:
            depth = disparity_to_depth(read_plane(disparity_path), baseline, camera.fx, self.max_depth_m)
            if label_ids is not None:
                depth[np.isin(label_ids, _NO_DEPTH_IDS)] = 0.0

        return Sample(image, camera, boxes, labels, semantic, depth, extras)
