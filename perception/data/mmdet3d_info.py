"""mmdetection3d's "info" layout (its v2 data files) written as JSON: nuScenes and KITTI frames.

    {root}/{name}.json       {"metainfo": {...}, "data_list": [entry, ...]}
      metainfo               "dataset": "nuscenes" (with "categories": name → id) or "DATASET": "KITTI"
      entry["images"][CAM]   img_path, cam2img (3x3 K; KITTI: 4x4 P), lidar2cam (4x4, LiDAR → camera)
      entry["lidar_points"]  lidar_path, num_pts_feats (nuScenes 5: x y z intensity ring; KITTI 4)
      entry["cam_instances"][CAM]  nuScenes: the 2D boxes seen by each camera: bbox [x1, y1, x2, y2],
                                   bbox_label, attr_label (index into NUSCENES_ATTRIBUTES)
      entry["instances"]     KITTI: boxes of its one labelled camera (CAM2): bbox, bbox_label (-1:
                             DontCare), truncated, occluded
    {root}/{img_path}        also looked for in samples/{CAM}/ (nuScenes) and training/image_2/ (KITTI)
    {root}/{lidar_path}      also looked for in samples/LIDAR_TOP/ and training/velodyne/

Split: the files ``{root}/*_infos_{split}.json`` when there are any (mmdetection3d's names);
otherwise every info JSON in the folder, whatever the split (a folder of loose info files is one
split). Each camera image of an entry is one ``Sample`` with its own intrinsics; depth is the
entry's LiDAR sweep projected into that camera (``lidar.project_to_depth``). Class ids become
names through the file's own ``categories`` (or mmdetection3d's fixed lists below) and project
classes through ``taxonomy``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from perception.data import taxonomy
from perception.data.lidar import project_to_depth, read_points
from perception.data.readers import read_rgb
from perception.data.sample import Camera, Sample

# mmdetection3d's class and attribute orders (mmdet3d/datasets/convert_utils.py); a file's own
# metainfo["categories"] wins where it has one.
KITTI_CATEGORIES = ("Pedestrian", "Cyclist", "Car", "Van", "Truck", "Person_sitting", "Tram", "Misc")
NUSCENES_CATEGORIES = (
    "car",
    "truck",
    "trailer",
    "bus",
    "construction_vehicle",
    "bicycle",
    "motorcycle",
    "pedestrian",
    "traffic_cone",
    "barrier",
)
NUSCENES_ATTRIBUTES = (
    "cycle.with_rider",
    "cycle.without_rider",
    "pedestrian.moving",
    "pedestrian.standing",
    "pedestrian.sitting_lying_down",
    "vehicle.moving",
    "vehicle.parked",
    "vehicle.stopped",
    "None",
)
_DEFAULT_CATEGORIES = {"kitti": KITTI_CATEGORIES, "nuscenes": NUSCENES_CATEGORIES}
_IMAGE_FOLDERS = ("samples/{camera}", "training/image_2")
_LIDAR_FOLDERS = ("samples/LIDAR_TOP", "training/velodyne")


def info_dataset(info: dict) -> str | None:
    """The data set an info file describes ("nuscenes", "kitti"), lower case; None if not an info file."""
    if not isinstance(info, dict) or not isinstance(info.get("data_list"), list):
        return None
    meta = info.get("metainfo") or {}
    name = meta.get("dataset", meta.get("DATASET"))
    return str(name).lower() if name else None


def info_files(root: Path, split: str) -> list[Path]:
    """``*_infos_{split}.json`` under root if any exist, else every ``*.json`` (see the module docstring)."""
    named = sorted(root.glob(f"*_infos_{split}.json"))
    return named or sorted(root.glob("*.json"))


def cameras(entry: dict) -> list[str]:
    """The entry's cameras that have an image (KITTI's "images" also holds R0_rect, and CAM0/1/3
    carry matrices only)."""
    images = entry.get("images") or {}
    return [name for name, image in images.items() if isinstance(image, dict) and image.get("img_path")]


def _locate(root: Path, name: str, folders: tuple[str, ...], camera: str = "") -> Path:
    candidates = [root / name] + [root / f.format(camera=camera) / Path(name).name for f in folders]
    return next((p for p in candidates if p.is_file()), candidates[0])


def _class_names(info: dict, dataset: str) -> dict[int, str]:
    categories = (info.get("metainfo") or {}).get("categories")
    if isinstance(categories, dict):
        return {int(i): name for name, i in categories.items() if int(i) >= 0}
    return dict(enumerate(_DEFAULT_CATEGORIES.get(dataset, ())))


def _det_name(dataset: str, category: str, attr_label: int | None) -> str | None:
    if dataset == "kitti":
        return taxonomy.KITTI_TO_DET.get(category)
    attribute = (
        NUSCENES_ATTRIBUTES[attr_label]
        if attr_label is not None and 0 <= attr_label < len(NUSCENES_ATTRIBUTES)
        else None
    )
    return taxonomy.nuscenes_det_name(category, attribute)


def parse_instances(
    instances: list[dict], names: dict[int, str], dataset: str
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(boxes float32 [N, 4], labels int64 [N], per-box extras) in project classes; unmapped,
    DontCare (-1) and two-wheelers without a rider are dropped. Extras: "truncation" and
    "occlusion" when every kept instance has them (KITTI)."""
    boxes, labels, rows = [], [], []
    for inst in instances:
        category = names.get(int(inst.get("bbox_label", -1)))
        name = _det_name(dataset, category, inst.get("attr_label")) if category else None
        if name is None or "bbox" not in inst:
            continue
        boxes.append([float(v) for v in inst["bbox"][:4]])
        labels.append(taxonomy.det_label(name))
        rows.append(inst)
    extras = {}
    for key, field in (("truncation", "truncated"), ("occlusion", "occluded")):
        if rows and all(field in r for r in rows):
            extras[key] = np.asarray([float(r[field]) for r in rows], dtype=np.float32)
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4), np.asarray(labels, dtype=np.int64), extras


class InfoDataset:
    """The frames of ``dataset`` ("nuscenes" or "kitti") in the info JSONs under ``root``: one per
    camera image. No info file is not an error here (``ids`` is empty); adapters decide."""

    def __init__(self, root: Path, split: str, dataset: str, camera_height_m: float | None = None):
        self.root = Path(root)
        self.dataset = dataset
        self.camera_height_m = camera_height_m
        self.infos: list[dict] = []
        for path in info_files(self.root, split):
            try:
                info = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue  # some other JSON file in the folder
            if info_dataset(info) == dataset:
                self.infos.append(info)
        self.frames = [
            (i, e, camera)
            for i, info in enumerate(self.infos)
            for e, entry in enumerate(info["data_list"])
            for camera in cameras(entry)
        ]

    @property
    def ids(self) -> list[str]:
        """Image file stems, one per frame (KITTI: the frame number)."""
        return [Path(self.infos[i]["data_list"][e]["images"][c]["img_path"]).stem for i, e, c in self.frames]

    def __len__(self) -> int:
        return len(self.frames)

    def _instances(self, entry: dict, camera: str) -> list[dict] | None:
        if "cam_instances" in entry:
            return (entry["cam_instances"] or {}).get(camera) or []
        if "instances" in entry and cameras(entry) == [camera]:  # KITTI: the one camera with an image is labelled
            return [inst for inst in entry["instances"] if "bbox" in inst]
        return None

    def _depth(self, entry: dict, image_info: dict, size: tuple[int, int]) -> np.ndarray | None:
        lidar = entry.get("lidar_points") or {}
        if not lidar.get("lidar_path") or "lidar2cam" not in image_info or "cam2img" not in image_info:
            return None
        path = _locate(self.root, lidar["lidar_path"], _LIDAR_FOLDERS)
        if not path.is_file():
            return None
        points = read_points(path, int(lidar.get("num_pts_feats", 4)))
        return project_to_depth(
            points[:, :3], np.asarray(image_info["lidar2cam"]), np.asarray(image_info["cam2img"]), size
        )

    def __getitem__(self, index: int) -> Sample:
        i, e, camera_name = self.frames[index]
        info, entry = self.infos[i], self.infos[i]["data_list"][e]
        image_info = entry["images"][camera_name]
        image = read_rgb(_locate(self.root, image_info["img_path"], _IMAGE_FOLDERS, camera_name))
        k = np.asarray(image_info["cam2img"], dtype=np.float64)
        fx, fy, cx, cy = (float(v) for v in (k[0, 0], k[1, 1], k[0, 2], k[1, 2]))
        camera = Camera(fx=fx, fy=fy, cx=cx, cy=cy, height_m=self.camera_height_m)
        extras: dict = {
            "source": self.dataset,
            "id": Path(image_info["img_path"]).stem,
            "camera": camera_name,
            "sample": str(entry.get("token", entry.get("sample_idx", e))),
        }
        boxes = labels = None
        instances = self._instances(entry, camera_name)
        if instances is not None:
            boxes, labels, per_box = parse_instances(instances, _class_names(info, self.dataset), self.dataset)
            extras.update(per_box)
        depth = self._depth(entry, image_info, image.shape[:2])
        if depth is not None:
            extras["depth_source"] = "lidar"
        return Sample(image, camera, boxes, labels, None, depth, extras)
