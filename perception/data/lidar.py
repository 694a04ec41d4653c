"""LiDAR points → sparse metric depth in a camera image (torch-free; KITTI and nuScenes share it).

Conventions: pixel centres sit at integer coordinates (OpenCV, KITTI), so a point projecting to
(u, v) lands in column ``floor(u + ½)``, row ``floor(v + ½)``. Depth is the third homogeneous
coordinate of ``intrinsics @ lidar_to_cam @ [x, y, z, 1]``: the distance along the optical axis
in metres (for a KITTI ``P2 = K [I | t]`` that is z in the rectified frame plus P2's t_z, the
few millimetres between camera 0 and camera 2). Where several points hit one pixel the nearest
is kept; pixels without a return are 0. The LiDAR sits apart from the camera, so near object
edges a background point the camera cannot see may still land beside the foreground (parallax):
the maps are ground truth for most pixels, not for every edge pixel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Points nearer than this along the optical axis are dropped: behind the camera, or the ego
# vehicle's own body (the nuScenes devkit's map_pointcloud_to_image uses the same 1 m).
MIN_DEPTH_M = 1.0


def read_points(path: Path, features: int) -> np.ndarray:
    """float32 [N, features] from a raw LiDAR ``.bin`` (KITTI: x, y, z, reflectance; nuScenes
    ``.pcd.bin``: x, y, z, intensity, ring index)."""
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size % features:
        raise ValueError(f"{path}: {raw.size} floats is not a whole number of {features}-value points")
    return raw.reshape(-1, features)


def homogeneous(matrix: np.ndarray | list, rows: int = 4) -> np.ndarray:
    """A 3x3 or 3x4 (or 4x4) matrix padded to 4x4 with the identity's rows (``rows`` 4), or its
    first 3 rows as 3x4 (``rows`` 3): KITTI's R0_rect is 3x3, Tr_velo_to_cam and P2 are 3x4."""
    m = np.asarray(matrix, dtype=np.float64)
    out = np.eye(4)
    out[: m.shape[0], : m.shape[1]] = m
    return out[:rows]


def project_to_depth(
    points_xyz: np.ndarray,
    lidar_to_cam: np.ndarray,
    intrinsics: np.ndarray,
    image_size: tuple[int, int],
    min_depth_m: float = MIN_DEPTH_M,
) -> np.ndarray:
    """float32 [H, W] depth in metres (0 = no return) of LiDAR points seen by one camera.

    points_xyz    [N, 3] in the LiDAR frame
    lidar_to_cam  [4, 4] LiDAR → camera (KITTI: R0_rect · Tr_velo_to_cam, the rectified frame)
    intrinsics    [3, 3] K, or [3, 4] / [4, 4] projection (KITTI P2)
    image_size    (height, width)
    """
    height, width = image_size
    projection = homogeneous(intrinsics, rows=3) @ homogeneous(lidar_to_cam)
    pts = np.asarray(points_xyz, dtype=np.float64).reshape(-1, 3)
    uvw = pts @ projection[:, :3].T + projection[:, 3]
    depth = uvw[:, 2]
    front = depth > min_depth_m
    uvw, depth = uvw[front], depth[front]
    cols = np.floor(uvw[:, 0] / depth + 0.5).astype(np.int64)
    rows = np.floor(uvw[:, 1] / depth + 0.5).astype(np.int64)
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    flat, depth = rows[inside] * width + cols[inside], depth[inside]
    order = np.argsort(depth, kind="stable")  # nearest first, so np.unique's first index is the nearest
    pixels, first = np.unique(flat[order], return_index=True)
    out = np.zeros(height * width, dtype=np.float32)
    out[pixels] = depth[order][first]
    return out.reshape(height, width)
