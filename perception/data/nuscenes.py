"""nuScenes in mmdetection3d's info layout (see ``mmdet3d_info``): one sample's six cameras.

    {root}/{name}.json                                    info file: cameras' cam2img and lidar2cam,
                                                          cam_instances (2D boxes per camera)
    {root}/{log}__CAM_FRONT__{timestamp}.jpg              1600x900 RGB (and the five other cameras)
    {root}/{log}__LIDAR_TOP__{timestamp}.pcd.bin          float32 x 5 (x, y, z, intensity, ring)

(The released layout, ``samples/CAM_*/`` and ``samples/LIDAR_TOP/`` beside the info files, works
too.) Each camera is one ``Sample``: boxes from its ``cam_instances`` (classes by ``taxonomy``:
car, truck, bus, pedestrian; ridden bicycles and motorcycles as cyclists), depth from the top
LiDAR projected into it (sparse: a 32-beam sweep), no semantic labels (``None``).
"""

from __future__ import annotations

from pathlib import Path

from perception.data.mmdet3d_info import InfoDataset
from perception.data.readers import check_split_exists


class NuScenesDataset(InfoDataset):
    """Every camera of every sample in the nuScenes info JSONs under ``root``."""

    def __init__(self, root: Path, split: str):
        check_split_exists(Path(root), "nuScenes info files")
        super().__init__(root, split, "nuscenes")
        if not self.frames:
            raise FileNotFoundError(f"nuScenes: no mmdetection3d info JSON with camera images under {root}")
