"""How each data set is scored: one declarative ``Protocol`` per data set, read by the metric code
(which has no per-data-set branches). ``perception eval --dataset NAME`` and the trainer's periodic
evaluation pick the protocol by the data set's name; any name not listed scores as ``synthetic`` does.

- ``synthetic`` (and every layout without its own entry): all 10 segmentation classes present in the
  ground truth, all 7 detection classes, depth in (0.001, 200) m, scored at the model's resolution.
- ``camvid``: IoU over the 8 classes CamVid labels; a predicted ``lane_marking`` counts as road (CamVid
  paints markings as Road) and a predicted ``terrain`` as vegetation (CamVid's Tree holds grass);
  Fence, Bicyclist and void are ignored by the adapter (IGNORE_INDEX, ``taxonomy.CAMVID_TO_SEG``).
- ``kitti``, ``nuscenes``: AP@.5 on the classes the data set labels; ground-truth boxes under 16 px
  tall in the original image are ignore regions (COCO ``iscrowd``: a detection on one is neither a true
  nor a false positive, a missed one no false negative); depth on LiDAR pixels between 1 and 80 m, with
  AbsRel after per-frame median scaling beside the metric figures.

Real data sets are scored at the *source* resolution (``at_source``): boxes go back to image pixels
with ``Letterbox.boxes_to_source`` and dense maps with ``Letterbox.map_to_source``, exactly what the
service returns with ``output_scale=1``. That is also how sparse LiDAR depth keeps every return: each
projected point is compared once, at its own pixel, with the prediction resampled there (bilinear),
instead of being resampled onto the model's coarser grid, where returns that share a model pixel (5 %
of KITTI's at 640x384) would have to be merged or dropped. Pixel counts per class weigh as in the
labels' own grid (CamVid's 480x360, not the 512x384 the letterbox makes of it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from perception.classes import DETECTION_CLASSES, SEGMENTATION_CLASSES, det_index, seg_index


@dataclass(frozen=True)
class Protocol:
    """What a data set is scored on. ``None`` class lists mean every class of the taxonomy."""

    name: str
    split: str  # the split ``perception eval --dataset NAME`` reads by default
    seg_classes: tuple[str, ...] | None = None  # scored segmentation classes
    # predicted class -> the class it counts as, applied to predictions (and labels) before scoring
    seg_merges: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    det_classes: tuple[str, ...] | None = None  # scored detection classes
    min_box_height: float = 0.0  # px in the source image; shorter ground-truth boxes are ignore regions
    depth_range: tuple[float, float] = (1e-3, 200.0)  # metres; ground truth outside it is not scored
    median_scaled: bool = False  # also report AbsRel after scaling each frame's prediction by median(gt)/median(pred)
    at_source: bool = False  # score in source-image pixels (outputs mapped back as the service maps them)

    def __post_init__(self) -> None:
        for name in (*(self.seg_classes or ()), *self.seg_merges, *self.seg_merges.values()):
            seg_index(name)  # ValueError on a misspelt class
        for name in self.det_classes or ():
            det_index(name)
        if self.seg_classes is not None and not set(self.seg_merges.values()) <= set(self.seg_classes):
            raise ValueError(f"{self.name}: seg_merges must fold into scored classes")

    @property
    def scored_seg(self) -> tuple[str, ...]:
        return self.seg_classes if self.seg_classes is not None else SEGMENTATION_CLASSES

    @property
    def scored_det(self) -> tuple[str, ...]:
        return self.det_classes if self.det_classes is not None else DETECTION_CLASSES

    def seg_lut(self) -> np.ndarray:
        """int64 [256] lookup: class index -> the index it is scored as (merges applied; 255 stays 255)."""
        lut = np.arange(256, dtype=np.int64)
        for source, target in self.seg_merges.items():
            lut[seg_index(source)] = seg_index(target)
        return lut

    def describe(self) -> list[str]:
        """The protocol in a few readable lines (printed above the table)."""
        lines = [f"protocol {self.name}: scored at {'source-image' if self.at_source else 'model'} resolution"]
        if self.seg_classes is not None:
            lines.append(f"segmentation: mIoU over {len(self.seg_classes)} classes ({', '.join(self.seg_classes)})")
        if self.seg_merges:
            folded = ", ".join(f"{a} -> {b}" for a, b in self.seg_merges.items())
            lines.append(f"prediction classes folded before scoring: {folded}")
        if self.det_classes is not None:
            lines.append(f"detection: AP@.5 over {', '.join(self.det_classes)}")
        if self.min_box_height:
            lines.append(f"boxes under {self.min_box_height:g} px tall (source image): ignore regions (COCO iscrowd)")
        low, high = self.depth_range
        if self.median_scaled:
            lines.append(f"depth: LiDAR pixels in [{low:g}, {high:g}] m; AbsRel_median_scaled: median(gt)/median(pred)")
        return lines


SYNTHETIC = Protocol("synthetic", split="test")

_LIDAR = {"min_box_height": 16.0, "depth_range": (1.0, 80.0), "median_scaled": True, "at_source": True}

PROTOCOLS: dict[str, Protocol] = {
    "synthetic": SYNTHETIC,
    "camvid": Protocol(
        "camvid",
        split="val",
        seg_classes=("road", "sidewalk", "building", "vegetation", "sky", "pole_sign", "vehicle", "person"),
        seg_merges=MappingProxyType({"lane_marking": "road", "terrain": "vegetation"}),
        at_source=True,
    ),
    # KITTI labels no buses, traffic lights or signs (Tram and Misc are dropped by the taxonomy)
    "kitti": Protocol("kitti", split="train", det_classes=("car", "truck", "pedestrian", "cyclist"), **_LIDAR),
    # nuScenes' detection classes carry no traffic lights or signs
    "nuscenes": Protocol(
        "nuscenes", split="train", det_classes=("car", "truck", "bus", "pedestrian", "cyclist"), **_LIDAR
    ),
}


def protocol_for(dataset: str) -> Protocol:
    """The protocol of ``dataset``; layouts without their own score as ``synthetic`` does."""
    return PROTOCOLS.get(dataset, SYNTHETIC)
