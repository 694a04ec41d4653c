"""Camera geometry of the synthetic world.

Frames (all right-handed, metres):

- world: X right, Y up, Z forward (the ego vehicle's heading); the ground is the plane Y = 0 and
  the camera's optical centre is at (0, h, 0).
- level: x right, y down, z forward with its origin at the optical centre, i.e.
  (x, y, z) = (X, h - Y, Z); the ground is the plane y = h.
- camera: x right, y down, z along the optical axis. ``p_level = R @ p_camera`` with
  ``R = Rx(pitch) @ Rz(roll)``, ``Rx(p) = [[1, 0, 0], [0, cos p, sin p], [0, -sin p, cos p]]`` and
  ``Rz(r) = [[cos r, -sin r, 0], [sin r, cos r, 0], [0, 0, 1]]``; positive pitch looks down.

A pixel (u, v) (pixel centres at integer coordinates) looks along ``d = R @ K^-1 @ (u, v, 1)`` in
the level frame; a point at depth z (camera z) along it is ``z * d``. For any plane
``n . p_level = k`` the inverse depth ``1/z = (n @ M / k) . (u, v, 1)`` with ``M = R @ K^-1`` is
affine in (u, v): the renderer uses this for the ground (n = (0, 1, 0), k = h) and every box face.
"""

from __future__ import annotations

import math

import numpy as np

from perception.data.sample import Camera


def camera_rotation(pitch: float, roll: float) -> np.ndarray:
    """R with p_level = R @ p_camera (see the module docstring)."""
    cp, sp, cr, sr = np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, sp], [0.0, -sp, cp]])
    rz = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    return rx @ rz


def intrinsics(camera: Camera) -> np.ndarray:
    return np.array([[camera.fx, 0.0, camera.cx], [0.0, camera.fy, camera.cy], [0.0, 0.0, 1.0]])


def pixel_to_level(camera: Camera) -> np.ndarray:
    """M = R @ K^-1: row i of M is the affine map (u, v, 1) -> i-th level coordinate of the ray."""
    return camera_rotation(camera.pitch_rad or 0.0, camera.roll_rad or 0.0) @ np.linalg.inv(intrinsics(camera))


def plane_inverse_depth(camera: Camera, normal: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Coefficients (a, b, c) with 1/z = a u + b v + c for the planes ``normal . p_level = offset``.

    ``normal`` [..., 3], ``offset`` [...]; returns [..., 3].
    """
    return (np.asarray(normal) @ pixel_to_level(camera)) / np.asarray(offset)[..., None]


def ground_inverse_depth(camera: Camera) -> np.ndarray:
    """(a, b, c) with 1/z = a u + b v + c on the ground; values <= 0 mean the ray misses it."""
    return plane_inverse_depth(camera, np.array([0.0, 1.0, 0.0]), np.array(camera.height_m))


def thing_to_level(x: float, z: float, yaw: float, local: np.ndarray, camera_height: float) -> np.ndarray:
    """Points [N, 3] in the frame of a thing standing at world (x, z) turned by ``yaw`` (rad from +Z
    towards +X; x right, y up, z forward) → the level frame."""
    c, s = math.cos(yaw), math.sin(yaw)
    wx = x + local[:, 0] * c + local[:, 2] * s
    wz = z - local[:, 0] * s + local[:, 2] * c
    return np.stack([wx, camera_height - local[:, 1], wz], -1)


def level_to_camera(camera: Camera, points: np.ndarray) -> np.ndarray:
    """Level-frame points [..., 3] in camera coordinates."""
    return points @ camera_rotation(camera.pitch_rad or 0.0, camera.roll_rad or 0.0)  # R^T p for row vectors
