"""Each real layout written in miniature, exactly as released, and read back."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from perception.classes import DETECTION_CLASSES, IGNORE_INDEX, seg_index
from perception.data import taxonomy
from perception.data.bdd100k import Bdd100kDataset
from perception.data.cityscapes import CityscapesDataset
from perception.data.kitti import KittiDataset, KittiDepthDataset
from perception.data.registry import open_dataset

CAR, TRUCK, PED, CYC, LIGHT, SIGN = (
    DETECTION_CLASSES.index(n) for n in ("car", "truck", "pedestrian", "cyclist", "traffic_light", "traffic_sign")
)


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), array)


def _rgb(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# --- Cityscapes ------------------------------------------------------------------------------------
CS_ID = taxonomy.CITYSCAPES_ID


def write_cityscapes(root: Path, split: str = "train") -> None:
    """Two frames of 64x32; the first with every file, the second without disparity."""
    h, w = 32, 64
    labels = np.full((h, w), CS_ID["building"], np.uint8)
    labels[:8] = CS_ID["sky"]
    labels[20:] = CS_ID["road"]
    instances = labels.astype(np.uint16)

    def thing(name: str, k: int, x1: int, y1: int, x2: int, y2: int) -> None:  # pixel edges
        labels[y1:y2, x1:x2] = CS_ID[name]
        instances[y1:y2, x1:x2] = CS_ID[name] * 1000 + k

    thing("car", 0, 5, 15, 15, 25)
    thing("car", 1, 20, 18, 28, 26)
    thing("person", 0, 30, 12, 34, 26)
    thing("bicycle", 0, 38, 18, 48, 28)  # ridden: the rider overlaps it
    thing("rider", 0, 40, 10, 45, 20)
    thing("bicycle", 1, 55, 22, 61, 28)  # parked: no rider
    labels[28:31, 0:4] = instances[28:31, 0:4] = CS_ID["car"]  # a car group: no single instance
    labels[2:8, 50:54] = instances[2:8, 50:54] = CS_ID["traffic light"]
    labels[31, :] = instances[31, :] = CS_ID["ego vehicle"]

    disparity = np.full((h, w), 1 + 256 * 4, np.uint16)  # d = 4 px
    disparity[:, 0] = 0  # invalid
    disparity[:, 1] = 1  # zero disparity: infinitely far
    disparity[10:12, 20:30] = 1 + 128  # d = 0.5 px
    camera = {
        "extrinsic": {"baseline": 0.2, "pitch": 0.05, "roll": 0.0, "x": 1.7, "y": 0.1, "yaw": 0.0, "z": 1.3},
        "intrinsic": {"fx": 100.0, "fy": 101.0, "u0": 31.5, "v0": 15.5},
    }
    for i, (city, frame) in enumerate([("aachen", "aachen_000000_000019"), ("bochum", "bochum_000001_000019")]):
        _write(root / "leftImg8bit" / split / city / f"{frame}_leftImg8bit.png", _rgb(h, w, i))
        _write(root / "gtFine" / split / city / f"{frame}_gtFine_labelIds.png", labels)
        _write(root / "gtFine" / split / city / f"{frame}_gtFine_instanceIds.png", instances)
        cam_path = root / "camera" / split / city / f"{frame}_camera.json"
        cam_path.parent.mkdir(parents=True, exist_ok=True)
        cam_path.write_text(json.dumps(camera))
        if i == 0:
            _write(root / "disparity" / split / city / f"{frame}_disparity.png", disparity)


def _rows(boxes: np.ndarray, labels: np.ndarray, cls: int) -> list[list[float]]:
    return sorted(boxes[labels == cls].tolist())


def test_cityscapes_reads_every_target(tmp_path):
    write_cityscapes(tmp_path)
    data = CityscapesDataset(tmp_path, "train")
    assert len(data) == 2
    s = data[0]
    assert s.image.shape == (32, 64, 3) and s.image.dtype == np.uint8
    assert s.extras["id"] == "aachen_000000_000019" and s.extras["city"] == "aachen"
    assert np.array_equal(s.image, _rgb(32, 64, 0))

    # camera: intrinsics and pose from the JSON
    assert (s.camera.fx, s.camera.fy, s.camera.cx, s.camera.cy) == (100.0, 101.0, 31.5, 15.5)
    assert s.camera.height_m == 1.3 and s.camera.pitch_rad == 0.05

    # semantic through the mapping; ego vehicle and groups handled
    assert s.semantic[0, 0] == seg_index("sky") and s.semantic[25, 50] == seg_index("road")
    assert s.semantic[15, 8] == seg_index("vehicle") and s.semantic[15, 41] == seg_index("person")  # rider
    assert s.semantic[4, 51] == seg_index("pole_sign") and s.semantic[10, 10] == seg_index("building")
    assert (s.semantic[31] == IGNORE_INDEX).all()

    # boxes from instances; the rider + bicycle become one cyclist; parked bicycle and group dropped
    assert _rows(s.boxes, s.labels, CAR) == [[5, 15, 15, 25], [20, 18, 28, 26]]
    assert _rows(s.boxes, s.labels, PED) == [[30, 12, 34, 26]]
    assert _rows(s.boxes, s.labels, CYC) == [[38, 10, 48, 28]]
    assert _rows(s.boxes, s.labels, LIGHT) == [[50, 2, 54, 8]]
    assert len(s.boxes) == 5 and s.boxes.dtype == np.float32 and s.labels.dtype == np.int64
    assert s.extras["instance"][16, 6] == 26000

    # depth = baseline * fx / ((p - 1) / 256)
    assert s.depth.dtype == np.float32
    assert s.depth[15, 40] == pytest.approx(0.2 * 100 / 4)
    assert s.depth[10, 25] == pytest.approx(0.2 * 100 / 0.5)
    assert (s.depth[:, :2] == 0).all()  # p = 0 invalid, p = 1 infinitely far
    assert (s.depth[:8, :50] == 0).all() and (s.depth[31] == 0).all()  # sky, ego vehicle
    assert s.depth[4, 51] == pytest.approx(5.0)  # the traffic light in the sky keeps its depth

    second = data[1]
    assert second.depth is None and second.has_semantic and second.has_boxes


def test_cityscapes_without_labels_flags_them(tmp_path):
    write_cityscapes(tmp_path)
    for path in (tmp_path / "gtFine").rglob("*.png"):
        path.unlink()
    s = CityscapesDataset(tmp_path, "train")[0]
    assert not s.has_boxes and not s.has_semantic and s.has_depth


# --- KITTI ------------------------------------------------------------------------------------------
KITTI_LABELS = """Car 0.00 0 -1.57 10.00 12.00 30.00 20.00 1.50 1.60 3.90 1.00 1.70 20.00 -1.57
Van 0.50 1 0.20 2.50 3.00 8.00 9.50 2.00 1.80 4.50 -3.00 1.70 15.00 0.10
Cyclist 0.00 2 0.00 33.00 4.00 40.00 18.00 1.70 0.60 1.80 2.00 1.70 12.00 0.00
Tram 0.00 0 0.00 0.00 0.00 5.00 5.00 3.00 2.50 15.00 5.00 1.70 30.00 0.00
DontCare -1 -1 -10 41.00 2.00 47.00 7.00 -1 -1 -1 -1000 -1000 -1000 -10
"""
KITTI_CALIB = """P0: 7.215377e+02 0.000000e+00 6.095593e+02 0.000000e+00 0.000000e+00 7.215377e+02 1.728540e+02 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00
P1: 7.215377e+02 0.000000e+00 6.095593e+02 -3.875744e+02 0.000000e+00 7.215377e+02 1.728540e+02 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00
P2: 1.000000e+02 0.000000e+00 2.400000e+01 4.485728e+01 0.000000e+00 1.010000e+02 1.200000e+01 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03
P3: 7.215377e+02 0.000000e+00 6.095593e+02 -3.395242e+02 0.000000e+00 7.215377e+02 1.728540e+02 2.199936e+00 0.000000e+00 0.000000e+00 1.000000e+00 2.729905e-03
R0_rect: 9.999239e-01 9.837760e-03 -7.445048e-03 -9.869795e-03 9.999421e-01 -4.278459e-03 7.402527e-03 4.351614e-03 9.999631e-01
Tr_velo_to_cam: 7.533745e-03 -9.999714e-01 -6.166020e-04 -4.069766e-03 1.480249e-02 7.280733e-04 -9.998902e-01 -7.631618e-02 9.998621e-01 7.523790e-03 1.480755e-02 -2.717806e-01
Tr_imu_to_velo: 9.999976e-01 7.553071e-04 -2.035826e-03 -8.086759e-01 -7.854027e-04 9.998898e-01 -1.482298e-02 3.195559e-01 2.024406e-03 1.482454e-02 9.998881e-01 -7.997231e-01
"""  # noqa: E501 (real calib lines)


def write_kitti(root: Path) -> None:
    h, w = 24, 48
    for i, frame in enumerate(["000000", "000001"]):
        _write(root / "training" / "image_2" / f"{frame}.png", _rgb(h, w, i))
        (root / "training" / "label_2").mkdir(parents=True, exist_ok=True)
        (root / "training" / "label_2" / f"{frame}.txt").write_text(KITTI_LABELS if i == 0 else "")
        (root / "training" / "calib").mkdir(parents=True, exist_ok=True)
        (root / "training" / "calib" / f"{frame}.txt").write_text(KITTI_CALIB)
    depth = np.zeros((h, w), np.uint16)
    depth[20, 10] = 2560  # 10 m
    depth[21, 30] = 2561
    _write(root / "training" / "depth" / "000000.png", depth)
    _write(root / "testing" / "image_2" / "000000.png", _rgb(h, w, 9))
    (root / "ImageSets").mkdir()
    (root / "ImageSets" / "val.txt").write_text("000001\n")


def test_kitti_object_layout(tmp_path):
    write_kitti(tmp_path)
    data = KittiDataset(tmp_path, "train")
    assert len(data) == 2
    s = data[0]
    assert np.array_equal(s.image, _rgb(24, 48, 0))
    assert (s.camera.fx, s.camera.fy, s.camera.cx, s.camera.cy) == (100.0, 101.0, 24.0, 12.0)
    # Car, Van → car, Cyclist; Tram dropped, DontCare skipped
    assert s.labels.tolist() == [CAR, CAR, CYC]
    assert s.boxes.tolist() == [[10, 12, 30, 20], [2.5, 3, 8, 9.5], [33, 4, 40, 18]]
    assert s.extras["truncation"].tolist() == [0.0, 0.5, 0.0]
    assert s.extras["occlusion"].tolist() == [0, 1, 2]
    assert s.semantic is None
    assert s.depth[20, 10] == 10.0 and s.depth[21, 30] == pytest.approx(10 + 1 / 256)
    assert (s.depth > 0).sum() == 2

    empty = data[1]
    assert empty.has_boxes and len(empty.boxes) == 0 and empty.depth is None

    assert KittiDataset(tmp_path, "val").ids == ["000001"]
    test = KittiDataset(tmp_path, "test")[0]
    assert not test.has_boxes and test.extras["intrinsics_known"] is False


def test_kitti_depth_completion_layout(tmp_path):
    drive = "2011_09_26_drive_0001_sync"
    depth = np.zeros((24, 48), np.uint16)
    depth[12, 5] = 256 * 7
    _write(tmp_path / "data_depth_annotated/val" / drive / "proj_depth/groundtruth/image_02/0000000005.png", depth)
    _write(tmp_path / "2011_09_26" / drive / "image_02/data/0000000005.png", _rgb(24, 48, 3))
    (tmp_path / "2011_09_26/calib_cam_to_cam.txt").write_text(
        "calib_time: 09-Jan-2012 13:57:47\ncorner_dist: 9.950000e-02\n"
        "P_rect_02: 7.2e+02 0 6.0e+02 4.4e+01 0 7.1e+02 1.7e+02 2.1e-01 0 0 1 2.7e-03\n"
    )
    data = KittiDepthDataset(tmp_path, "val")
    assert len(data) == 1
    s = data[0]
    assert s.depth[12, 5] == 7.0 and s.camera.fx == 720.0 and s.camera.cy == 170.0
    assert not s.has_boxes and not s.has_semantic


# --- BDD100K ------------------------------------------------------------------------------------------
def _box(x1, y1, x2, y2):
    return {"x1": x1, "y1": y1, "x2": x2, "y2": y2}


def write_bdd(root: Path, split: str = "val") -> None:
    h, w = 36, 64
    for i, name in enumerate(["a1b2c3d4-00000001", "a1b2c3d4-00000002"]):
        _write(root / "images" / "100k" / split / f"{name}.jpg", _rgb(h, w, i))
    frames = [
        {
            "name": "a1b2c3d4-00000001.jpg",
            "attributes": {"weather": "clear", "scene": "city street", "timeofday": "daytime"},
            "timestamp": 10000,
            "labels": [
                {
                    "id": "1",
                    "category": "car",
                    "attributes": {"occluded": True, "truncated": False},
                    "box2d": _box(1.5, 2.0, 20.0, 15.0),
                },
                {
                    "id": "2",
                    "category": "rider",
                    "attributes": {"occluded": False, "truncated": True},
                    "box2d": _box(30, 5, 36, 20),
                },
                {"id": "3", "category": "bicycle", "box2d": _box(28, 14, 38, 25)},
                {"id": "4", "category": "motorcycle", "box2d": _box(50, 20, 60, 30)},  # parked
                {
                    "id": "5",
                    "category": "traffic light",
                    "attributes": {"trafficLightColor": "G"},
                    "box2d": _box(40, 1, 43, 8),
                },
                {"id": "6", "category": "train", "box2d": _box(0, 0, 10, 10)},
                {"id": "7", "category": "lane", "poly2d": [{"vertices": [[0, 30], [60, 30]], "types": "LL"}]},
            ],
        },
        {"name": "a1b2c3d4-00000002.jpg", "attributes": {}, "timestamp": 10000},
    ]
    labels = root / "labels" / "det_20" / f"det_{split}.json"
    labels.parent.mkdir(parents=True)
    labels.write_text(json.dumps(frames))
    drivable = np.full((h, w), 2, np.uint8)
    drivable[24:, 10:40] = 0
    drivable[24:, 40:] = 1
    lane = np.full((h, w), 255, np.uint8)
    lane[30, :] = 6  # parallel, solid, single white
    lane[26, :] = 16 | 4  # dashed road curb
    _write(root / "labels" / "drivable" / "masks" / split / "a1b2c3d4-00000001.png", drivable)
    _write(root / "labels" / "lane" / "masks" / split / "a1b2c3d4-00000001.png", lane)
    # the second frame's mask in the prefix-less variant
    _write(root / "drivable" / "masks" / split / "a1b2c3d4-00000002.png", drivable)


def test_bdd100k_layout(tmp_path):
    write_bdd(tmp_path)
    data = Bdd100kDataset(tmp_path, "val")
    assert len(data) == 2
    s = data[0]
    assert s.image.shape == (36, 64, 3) and s.depth is None
    assert s.extras["intrinsics_known"] is False and s.camera.cx == 31.5
    assert s.extras["attributes"]["timeofday"] == "daytime"
    assert s.labels.tolist() == [CAR, LIGHT, CYC]
    assert s.boxes.tolist() == [[1.5, 2, 20, 15], [40, 1, 43, 8], [28, 5, 38, 25]]
    assert s.extras["occlusion"].tolist() == [1, 0, 0] and s.extras["truncation"].tolist() == [0, 0, 1]

    road, lane = seg_index("road"), seg_index("lane_marking")
    assert s.semantic[28, 20] == road and s.semantic[28, 50] == road  # direct and alternative
    assert (s.semantic[30] == lane).all()
    assert (s.semantic[26] == IGNORE_INDEX).all()  # road curb
    assert (s.semantic[:24] == IGNORE_INDEX).all() and s.semantic[28, 5] == IGNORE_INDEX

    second = data[1]
    assert second.has_boxes and len(second.boxes) == 0
    assert second.semantic[28, 20] == road and second.semantic[30, 20] == road  # no lane mask


def test_bdd_lane_bits():
    lane = np.array([[255, 0, 7, 8, 4, 36, 44]], np.uint8)  # bg, crosswalk, single yellow, bg bit, curb, vert curb, bg
    semantic = taxonomy.bdd_semantic(None, lane, lane.shape)
    m, i = seg_index("lane_marking"), IGNORE_INDEX
    assert semantic.tolist() == [[i, m, m, i, i, i, i]]


def test_pair_riders_is_greedy_and_one_to_one():
    riders = np.array([[10, 0, 14, 10], [30, 0, 34, 10]], np.float32)
    wheels = np.array([[9, 6, 16, 14], [100, 0, 110, 5]], np.float32)
    assert taxonomy.pair_riders(riders, wheels).tolist() == [[9, 0, 16, 14], [30, 0, 34, 10]]


def test_open_dataset(tmp_path):
    write_cityscapes(tmp_path / "cs")
    write_kitti(tmp_path / "kitti")
    write_bdd(tmp_path / "bdd")
    assert len(open_dataset("cityscapes", tmp_path / "cs", "train")) == 2
    assert len(open_dataset("kitti", tmp_path / "kitti", "val")) == 1
    assert len(open_dataset("bdd100k", tmp_path / "bdd", "val")) == 2
    with pytest.raises(ValueError):
        open_dataset("waymo", tmp_path, "train")  # not a registered layout
    with pytest.raises(ValueError):
        open_dataset("bdd100k", None, "train")  # no default root (kitti has one: the real-data folder)
    with pytest.raises(FileNotFoundError):
        open_dataset("cityscapes", tmp_path / "cs", "val")


def test_every_mapped_class_exists():
    seg = taxonomy.cityscapes_semantic_lut()
    assert set(seg[seg != IGNORE_INDEX]) <= set(range(10))
    for mapping in (taxonomy.CITYSCAPES_TO_DET, taxonomy.KITTI_TO_DET, taxonomy.BDD_TO_DET, taxonomy.NUSCENES_TO_DET):
        assert {v for v in mapping.values() if v} <= set(DETECTION_CLASSES)
    assert len(taxonomy.CITYSCAPES_LABELS) == 34
