"""KITTI: the object-detection layout (boxes, calibration, optional dense-ish depth) and the
depth-completion ground truth in its official layout.

Object benchmark (``KittiDataset``)::

    {root}/training/image_2/000000.png      8-bit RGB, left colour camera
    {root}/training/label_2/000000.txt      15 fields per object (type, truncated, occluded, alpha,
                                            bbox left top right bottom, h w l, x y z, rotation_y)
    {root}/training/calib/000000.txt        P0..P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo
    {root}/training/velodyne/000000.bin     optional LiDAR scan, float32 x, y, z, reflectance
    {root}/training/depth/000000.png        optional, this project's convention: uint16, metres·256,
                                            0 = no measurement (the depth-completion format,
                                            e.g. matched to object frames with the devkit mapping)
    {root}/testing/...                      same, without label_2
    {root}/ImageSets/{split}.txt            optional frame lists (e.g. train/val of training/)
    {root}/*.json                           optional frames in mmdetection3d's info layout (image,
                                            LiDAR .bin beside it; see ``mmdet3d_info``), train split

``training/`` may also sit one level down, in ``{root}/object/`` (the object benchmark's own
folder name). Splits: ``train``/``training`` and ``test``/``testing`` are the folders; any other
name needs ``ImageSets/{name}.txt`` and reads those frames from ``training/``. The ``train`` split
also holds the info-layout frames whose number is not already in ``training/``.

Depth: ``depth/`` PNGs where present (denser, curated); otherwise the velodyne scan projected into
the left colour image through ``R0_rect · Tr_velo_to_cam`` and ``P2`` (``lidar.project_to_depth``:
metres along the optical axis, nearest return per pixel, 0 = none); otherwise ``None``.

Depth completion (``KittiDepthDataset``), ``data_depth_annotated.zip`` unpacked into
``{root}/data_depth_annotated`` beside the raw drives::

    {root}/data_depth_annotated/{train,val}/{drive}/proj_depth/groundtruth/image_0{2,3}/{frame}.png
    {root}/{date}/{drive}/image_0{2,3}/data/{frame}.png       raw synced+rectified images
    {root}/{date}/calib_cam_to_cam.txt                        P_rect_02 / P_rect_03
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from perception.data import taxonomy
from perception.data.lidar import homogeneous, project_to_depth, read_points
from perception.data.mmdet3d_info import InfoDataset
from perception.data.readers import check_split_exists, read_plane, read_rgb
from perception.data.sample import Camera, Sample

CAMERA_HEIGHT_M = 1.65  # KITTI's recording platform: colour cameras 1.65 m above the ground
NOMINAL_P2 = (721.5377, 721.5377, 609.5593, 172.854)  # fx, fy, cx, cy of a typical drive

_SPLIT_FOLDERS = {"train": "training", "training": "training", "test": "testing", "testing": "testing"}


def read_calib(path: Path) -> dict[str, np.ndarray]:
    """``key: numbers`` lines of a KITTI calibration file; non-numeric lines (calib_time) skipped."""
    calib = {}
    for line in path.read_text().splitlines():
        key, _, values = line.partition(":")
        try:
            calib[key.strip()] = np.array([float(v) for v in values.split()], dtype=np.float64)
        except ValueError:
            continue
    return calib


def camera_from_projection(p: np.ndarray) -> Camera:
    """Intrinsics from a 3x4 rectified projection matrix (12 numbers, row-major)."""
    p = p.reshape(3, 4)
    return Camera(fx=float(p[0, 0]), fy=float(p[1, 1]), cx=float(p[0, 2]), cy=float(p[1, 2]), height_m=CAMERA_HEIGHT_M)


def lidar_depth(velodyne: Path, calib: dict[str, np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Sparse depth [H, W] in metres of a velodyne scan seen by the left colour camera (P2)."""
    lidar_to_cam = homogeneous(calib["R0_rect"].reshape(3, 3)) @ homogeneous(calib["Tr_velo_to_cam"].reshape(3, 4))
    return project_to_depth(read_points(velodyne, 4)[:, :3], lidar_to_cam, calib["P2"].reshape(3, 4), size)


def read_depth_png(path: Path) -> np.ndarray:
    """Metres from a KITTI depth PNG (uint16, value/256; 0 = no measurement)."""
    raw = read_plane(path)
    if raw.dtype != np.uint16:
        raise ValueError(f"{path}: KITTI depth must be a 16-bit PNG, got {raw.dtype}")
    return raw.astype(np.float32) / 256.0


def read_labels(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(boxes [N, 4], labels [N], truncation [N], occlusion [N]) in project classes;
    DontCare and unmapped types are skipped."""
    boxes, labels, truncation, occlusion = [], [], [], []
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) < 15:
            continue
        name = taxonomy.KITTI_TO_DET.get(fields[0])
        if name is None:
            continue
        boxes.append([float(v) for v in fields[4:8]])
        labels.append(taxonomy.det_label(name))
        truncation.append(float(fields[1]))
        occlusion.append(float(fields[2]))
    return (
        np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        np.asarray(labels, dtype=np.int64),
        np.asarray(truncation, dtype=np.float32),
        np.asarray(occlusion, dtype=np.float32),
    )


def object_folder(root: Path) -> Path:
    """Where ``training/`` and ``testing/`` are: ``root``, or ``root/object`` when they sit there."""
    nested = root / "object"
    return nested if not (root / "training").is_dir() and nested.is_dir() else root


class KittiDataset:
    """KITTI object ``split`` under ``root``; see the module docstring."""

    def __init__(self, root: Path, split: str):
        self.root = Path(root)
        base = object_folder(self.root)
        list_file = base / "ImageSets" / f"{split}.txt"
        if split not in _SPLIT_FOLDERS and list_file.is_file():
            self.folder = base / "training"
            self.ids = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
        elif split in _SPLIT_FOLDERS:
            self.folder = base / _SPLIT_FOLDERS[split]
            check_split_exists(self.folder / "image_2", "KITTI images")
            self.ids = sorted(p.stem for p in (self.folder / "image_2").glob("*.png"))
        else:
            raise FileNotFoundError(f"KITTI split {split!r}: not train/test and no {list_file}")
        self.info = None
        self.info_index: list[int] = []  # frames of self.info that training/ does not already hold
        if _SPLIT_FOLDERS.get(split) == "training":
            self.info = InfoDataset(self.root, split, "kitti", camera_height_m=CAMERA_HEIGHT_M)
            known = set(self.ids)
            self.info_index = [i for i, frame in enumerate(self.info.ids) if frame not in known]

    def __len__(self) -> int:
        return len(self.ids) + len(self.info_index)

    def __getitem__(self, index: int) -> Sample:
        if index >= len(self.ids) and self.info is not None:
            return self.info[self.info_index[index - len(self.ids)]]
        frame = self.ids[index]
        image = read_rgb(self.folder / "image_2" / f"{frame}.png")
        extras: dict = {"source": "kitti", "id": frame}

        calib_path = self.folder / "calib" / f"{frame}.txt"
        calib = read_calib(calib_path) if calib_path.is_file() else None
        if calib is not None:
            camera = camera_from_projection(calib["P2"])
        else:
            camera, extras["intrinsics_known"] = Camera(*NOMINAL_P2, height_m=CAMERA_HEIGHT_M), False

        boxes = labels = None
        label_path = self.folder / "label_2" / f"{frame}.txt"
        if label_path.is_file():
            boxes, labels, extras["truncation"], extras["occlusion"] = read_labels(label_path)

        depth = None
        depth_path = self.folder / "depth" / f"{frame}.png"
        velodyne_path = self.folder / "velodyne" / f"{frame}.bin"
        if depth_path.is_file():
            depth, extras["depth_source"] = read_depth_png(depth_path), "png"
        elif velodyne_path.is_file() and calib is not None:
            depth, extras["depth_source"] = lidar_depth(velodyne_path, calib, image.shape[:2]), "lidar"
        return Sample(image, camera, boxes, labels, None, depth, extras)


class KittiDepthDataset:
    """KITTI depth-completion ground truth (``split`` train or val) with the raw images it
    annotates; depth only (no boxes or semantics). See the module docstring."""

    def __init__(self, root: Path, split: str):
        self.root = Path(root)
        gt_dir = self.root / "data_depth_annotated" / split
        check_split_exists(gt_dir, "KITTI depth ground truth")
        self.depth_files = sorted(gt_dir.glob("*/proj_depth/groundtruth/image_0[23]/*.png"))
        self._calib: dict[str, dict[str, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.depth_files)

    def __getitem__(self, index: int) -> Sample:
        depth_path = self.depth_files[index]
        cam = depth_path.parent.name  # image_02 or image_03
        drive = depth_path.parents[3].name  # 2011_09_26_drive_0001_sync
        date = drive[:10]
        image = read_rgb(self.root / date / drive / cam / "data" / depth_path.name)
        if date not in self._calib:
            self._calib[date] = read_calib(self.root / date / "calib_cam_to_cam.txt")
        camera = camera_from_projection(self._calib[date][f"P_rect_{cam[-2:]}"])
        extras = {"source": "kitti_depth", "id": f"{drive}/{cam}/{depth_path.stem}"}
        return Sample(image, camera, None, None, None, read_depth_png(depth_path), extras)
