"""Image bytes in, letterboxed pixels out; dense outputs back to compact encodings.

OpenCV releases the GIL in decode, resize and encode, so these run in worker threads.
"""

from __future__ import annotations

import base64

import cv2
import numpy as np

DEPTH_PNG_SCALE = 1 / 256  # metres per unit of a 16-bit depth PNG (KITTI's convention)


class ImageError(ValueError):
    """The bytes are not an image this service can read."""


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """JPEG or PNG bytes → uint8 RGB [H, W, 3]. EXIF orientation is applied, 16-bit images are
    reduced to 8 bits, grey and alpha images become RGB."""
    if not data:
        raise ImageError("the image is empty (0 bytes)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError("the image could not be decoded (corrupt, truncated or not a JPEG/PNG)")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ImageError(f"the image has {image.shape[1]}x{image.shape[0]} pixels, more than {max_pixels}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# Fastest zlib level and one fixed row filter (Sub): OpenCV's default adaptive filtering took 2–5× as
# long on 1280×720 class maps and depth for files of about the same size (benchmarks/results).
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1]
if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV ≥ 4.10
    PNG_PARAMS += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]


def png_base64(plane: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", plane, PNG_PARAMS)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def depth_to_uint16(depth_m: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(depth_m / DEPTH_PNG_SCALE), 0, 65535).astype(np.uint16)
