"""Decoding the answer's segmentation (PNG or RLE) and depth (float16 or 16-bit PNG) payloads."""

from __future__ import annotations

import base64

import cv2
import numpy as np


def decode_png(data_b64: str, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    """A base64 PNG payload as an array (8- or 16-bit, as stored)."""
    plane = cv2.imdecode(np.frombuffer(base64.b64decode(data_b64), np.uint8), flags)
    if plane is None:
        raise ValueError("the answer's PNG could not be decoded")
    return plane


def decode_segmentation(seg: dict) -> np.ndarray:
    """The class map, uint8 [height, width]; pixel values are legend ids (``seg["classes"]``).

    RLE counts are runs of equal values over the column-major flattened map. The counts alone
    do not say which class each run has: that comes from ``seg["values"]`` (one class id per run)
    when the answer carries it; without it an RLE answer cannot be decoded and this raises."""
    h, w = seg["height"], seg["width"]
    if seg["encoding"] == "png":
        plane = decode_png(seg["data"])
    elif seg["encoding"] == "rle":
        counts = np.asarray(seg["counts"], np.int64)
        if counts.sum() != h * w:
            raise ValueError(f"RLE counts add up to {counts.sum()}, not {h}x{w}={h * w} pixels")
        values = seg.get("values")
        if values is None:
            raise ValueError(
                "this RLE segmentation has run lengths but no class id per run ('values'); "
                "ask for segmentation_encoding=png to get the class map"
            )
        if len(values) != len(counts):
            raise ValueError(f"RLE has {len(counts)} runs but {len(values)} values")
        flat = np.repeat(np.asarray(values, np.uint8), counts)
        plane = flat.reshape(w, h).T  # column-major: the first h values are the first column
    else:
        raise ValueError(f"unknown segmentation encoding {seg['encoding']!r}")
    if plane.shape != (h, w):
        raise ValueError(f"segmentation is {plane.shape}, the answer says {(h, w)}")
    return np.ascontiguousarray(plane)


def run_lengths(class_map: np.ndarray) -> list[int]:
    """The run lengths a class map has in the service's RLE (column-major runs of equal values)."""
    flat = class_map.T.ravel()
    bounds = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]))
    return np.diff(bounds).tolist()


def decode_depth(depth: dict) -> np.ndarray:
    """Depth in metres, float32 [height, width]."""
    h, w = depth["height"], depth["width"]
    if depth["encoding"] == "png16":
        plane = decode_png(depth["data"]).astype(np.float32) * np.float32(depth["scale"])
    elif depth["encoding"] == "float16":
        raw = base64.b64decode(depth["data"])
        if len(raw) != 2 * h * w:
            raise ValueError(f"float16 depth has {len(raw)} bytes, expected {2 * h * w}")
        plane = np.frombuffer(raw, "<f2").astype(np.float32).reshape(h, w)
    else:
        raise ValueError(f"unknown depth encoding {depth['encoding']!r}")
    if plane.shape != (h, w):
        raise ValueError(f"depth is {plane.shape}, the answer says {(h, w)}")
    return plane
