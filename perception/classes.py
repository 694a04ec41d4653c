"""The project's taxonomy: the one home of the class lists and the segmentation palette.

Everything else reads these lists (datasets map into them, the exporter writes them into the
ONNX metadata, the service reads them back from there). Torch-free on purpose.
"""

from __future__ import annotations

DETECTION_CLASSES: tuple[str, ...] = (
    "car",
    "truck",
    "bus",
    "pedestrian",
    "cyclist",  # a rider with a bicycle or motorcycle
    "traffic_light",
    "traffic_sign",
)

SEGMENTATION_CLASSES: tuple[str, ...] = (
    "road",
    "lane_marking",
    "sidewalk",  # sidewalk and curb
    "building",  # buildings, walls, fences
    "vegetation",
    "terrain",
    "sky",
    "pole_sign",  # poles, traffic signs and lights
    "vehicle",  # cars, trucks, buses, two-wheelers
    "person",  # pedestrians and riders
)

# RGB colour per segmentation class, in SEGMENTATION_CLASSES order (Cityscapes-like).
SEGMENTATION_PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128),
    (255, 255, 255),
    (244, 35, 232),
    (70, 70, 70),
    (107, 142, 35),
    (152, 251, 152),
    (70, 130, 180),
    (220, 220, 0),
    (0, 0, 142),
    (220, 20, 60),
)

IGNORE_INDEX = 255  # semantic label for pixels that carry no label

assert len(SEGMENTATION_PALETTE) == len(SEGMENTATION_CLASSES)


def det_index(name: str) -> int:
    return DETECTION_CLASSES.index(name)


def seg_index(name: str) -> int:
    return SEGMENTATION_CLASSES.index(name)
