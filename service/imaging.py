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


class ImageTooLarge(ImageError):
    """The image declares more pixels than the service decodes."""


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); C4, C8 and CC are not frames.
JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def declared_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR or a JPEG's start-of-frame segment, read before any pixel
    is decoded, so a small file that declares a huge image (a decompression bomb) is refused
    without allocating it. Raises ImageError for anything that is not a JPEG or PNG."""
    width, height = _declared_size(data)
    if width == 0 or height == 0:
        raise ImageError(f"the image could not be decoded (it declares {width}x{height} pixels)")
    return width, height


def _declared_size(data: bytes) -> tuple[int, int]:
    if not data:
        raise ImageError("the image is empty (0 bytes)")
    if data.startswith(PNG_SIGNATURE):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageError("the image could not be decoded (truncated PNG: no IHDR header)")
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if not data.startswith(JPEG_SOI):
        raise ImageError("the image could not be decoded (not a JPEG or PNG)")
    i = 2
    while i + 4 <= len(data):  # walk the segments up to the frame header
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            break
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in JPEG_SOF:
            if length < 7 or i + 9 > len(data):
                break
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
        i += 2 + length
    raise ImageError("the image could not be decoded (corrupt or truncated JPEG: no frame header)")


REDUCED_COLOR = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                 8: cv2.IMREAD_REDUCED_COLOR_8}  # fmt: skip


def jpeg_reduction(data: bytes, width: int, height: int, need_w: int, need_h: int) -> int:
    """The largest factor (1, 2, 4 or 8) by which a JPEG of ``width`` x ``height`` can be decoded
    (libjpeg's DCT scaling: a 1280x720 frame decodes to 640x360 in under half the time) and still
    be at least ``need_w`` x ``need_h``, all in the file's own orientation. 1 for PNG, whose reduced
    decoding is a full decode and a plain resize."""
    if not data.startswith(JPEG_SOI):
        return 1
    return max((r for r in REDUCED_COLOR if width // r >= need_w and height // r >= need_h), default=1)


def decode_image(data: bytes, max_pixels: int, reduction: int = 1) -> np.ndarray:
    """JPEG or PNG bytes → uint8 RGB [H, W, 3], optionally decoded at 1/``reduction`` of its size.
    EXIF orientation is applied, 16-bit images are reduced to 8 bits, grey and alpha images become
    RGB. The declared size is checked against ``max_pixels`` before decoding (ImageTooLarge); other
    formats OpenCV could read are refused."""
    width, height = declared_size(data)
    if width * height > max_pixels:
        raise ImageTooLarge(f"the image declares {width}x{height} pixels, more than {max_pixels}")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), REDUCED_COLOR[reduction])
    except cv2.error as exc:  # OpenCV raises for some malformed headers instead of returning None
        raise ImageError("the image could not be decoded (OpenCV refused it as malformed)") from exc
    if image is None:
        raise ImageError("the image could not be decoded (corrupt, truncated or not a JPEG/PNG)")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ImageTooLarge(f"the image has {image.shape[1]}x{image.shape[0]} pixels, more than {max_pixels}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# Fastest zlib level and one fixed row filter (Sub): OpenCV's default adaptive filtering took 2–5× as
# long on 1280×720 class maps and depth for files of about the same size (benchmarks/results).
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1]
if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV ≥ 4.10
    PNG_PARAMS += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]


# 16-bit depth: zlib's run-length strategy (matches of distance 1 only) on the Sub-filtered rows is a
# third faster than full matching for files about 15 % larger (640x360 depth: 3.8 vs 5.6 ms).
DEPTH_PNG_PARAMS = [*PNG_PARAMS, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]


def png_base64(plane: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", plane, DEPTH_PNG_PARAMS if plane.dtype == np.uint16 else PNG_PARAMS)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def depth_to_uint16(depth_m: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(depth_m / DEPTH_PNG_SCALE), 0, 65535).astype(np.uint16)


def float16(plane: np.ndarray) -> np.ndarray:
    """float32 → little-endian float16, the same values as NumPy's ``astype`` (round to nearest
    even) in half its time: OpenCV converts with the CPU's F16C instructions (640x360: 0.25 vs 0.47 ms)."""
    if plane.size == 1:  # OpenCV takes a one-element array for a scalar and answers 4x1
        with np.errstate(over="ignore"):
            return plane.astype("<f2")
    return cv2.multiply(plane, 1.0, dtype=cv2.CV_16F).astype("<f2", copy=False)
