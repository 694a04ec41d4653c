"""Augmentations ``(Sample, Generator) -> Sample`` that keep every target on the image's pixels.

Conventions (the tests check each one):
- Boxes are in *pixel-edge* coordinates: a box covering columns 10..19 is x1 = 10, x2 = 20. So a
  resize maps x → x·s and a flip maps x → W − x.
- Camera principal points are in *pixel-centre* coordinates (OpenCV, KITTI, Cityscapes): the
  top-left pixel's centre is (0, 0). So a resize maps cx → (cx + ½)·s − ½ and a flip maps
  cx → W − 1 − cx. Focal lengths scale with the image (fx → fx·sx).
- Depth stays in metres under any resize: scaling the image is a longer or shorter lens on the
  same scene, which the updated focal length records (canonical depth = depth·f_c / f).
- Dense labels (semantic, depth, any [H, W] array in ``extras``, e.g. "instance") are resampled
  nearest-neighbour with centre alignment, so they sit on the same pixels as the image
  (OpenCV's INTER_NEAREST is off by half a source pixel). Padding: image LETTERBOX_FILL,
  semantic IGNORE_INDEX, depth 0 (invalid), other extras 0.
- Sparse depth (fewer than SPARSE_DEPTH_FRACTION of the pixels valid: projected LiDAR) is not
  sampled but scattered (``resize_depth``): every return moves to the output pixel its pixel
  centre maps to, the nearest return winning where several land on one. Downscaling loses no
  pixel to sampling (only merges), upscaling copies no return onto its neighbours.
- 1-D arrays in ``extras`` as long as ``boxes`` (e.g. "truncation") are per-box and are kept or
  dropped with their boxes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import cv2
import numpy as np

from perception.classes import IGNORE_INDEX
from perception.contract import LETTERBOX_FILL
from perception.contract import Letterbox as LetterboxGeometry
from perception.data.sample import Sample

if TYPE_CHECKING:
    from perception.config import AugmentConfig, Config

Transform = Callable[[Sample, np.random.Generator], Sample]


class Compose:
    """Apply transforms in order with one random generator."""

    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        for transform in self.transforms:
            sample = transform(sample, rng)
        return sample


# --- helpers -------------------------------------------------------------------------------------
def resize_nearest(plane: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize that maps pixel centres like cv2's linear/area resize does."""
    src_h, src_w = plane.shape[:2]
    ys = np.minimum(((np.arange(height) + 0.5) * src_h / height).astype(np.int64), src_h - 1)
    xs = np.minimum(((np.arange(width) + 0.5) * src_w / width).astype(np.int64), src_w - 1)
    return plane[ys[:, None], xs[None, :]]


# Below this share of valid (> 0) pixels a depth map is sparse: KITTI's 64-beam LiDAR fills about 4 %
# of its image, nuScenes' 32 beams 0.3 %; the synthetic world's depth is never under half valid (sky).
SPARSE_DEPTH_FRACTION = 0.25


def is_sparse_depth(depth: np.ndarray) -> bool:
    return np.count_nonzero(depth > 0) < SPARSE_DEPTH_FRACTION * depth.size


def scatter_depth(depth: np.ndarray, width: int, height: int) -> np.ndarray:
    """Sparse depth resized to ``width`` x ``height`` by moving each valid pixel to the output pixel
    its centre maps to; where several land on one pixel the nearest (smallest) depth is kept, as
    ``lidar.project_to_depth`` does. 0 elsewhere."""
    src_h, src_w = depth.shape[:2]
    rows, cols = np.nonzero(depth > 0)
    values = depth[rows, cols]
    out_rows = np.minimum(((rows + 0.5) * (height / src_h)).astype(np.int64), height - 1)
    out_cols = np.minimum(((cols + 0.5) * (width / src_w)).astype(np.int64), width - 1)
    out = np.full(height * width, np.inf, dtype=depth.dtype)
    np.minimum.at(out, out_rows * width + out_cols, values)
    out[np.isinf(out)] = 0
    return out.reshape(height, width)


def resize_depth(depth: np.ndarray, width: int, height: int) -> np.ndarray:
    """Depth at ``width`` x ``height``: dense maps nearest-neighbour (``resize_nearest``), sparse ones
    (``is_sparse_depth``) scattered (``scatter_depth``), so no LiDAR return is thinned or smeared."""
    if depth.shape[:2] == (height, width):
        return depth
    return scatter_depth(depth, width, height) if is_sparse_depth(depth) else resize_nearest(depth, width, height)


def resize_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if (image.shape[1], image.shape[0]) == (width, height):
        return image
    interp = cv2.INTER_AREA if width < image.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interp)


def place(plane: np.ndarray, out_w: int, out_h: int, dx: int, dy: int, fill: float) -> np.ndarray:
    """``plane`` with its top-left corner at (dx, dy) of a canvas filled with ``fill``; negative
    offsets crop."""
    out = np.full((out_h, out_w, *plane.shape[2:]), fill, dtype=plane.dtype)
    h, w = plane.shape[:2]
    x0, y0 = max(0, -dx), max(0, -dy)
    x1, y1 = min(w, out_w - dx), min(h, out_h - dy)
    if x1 > x0 and y1 > y0:
        out[y0 + dy : y1 + dy, x0 + dx : x1 + dx] = plane[y0:y1, x0:x1]
    return out


def _is_dense(value: object, size: tuple[int, int]) -> bool:
    return isinstance(value, np.ndarray) and value.ndim >= 2 and value.shape[:2] == size


def _is_per_box(value: object, count: int) -> bool:
    return isinstance(value, np.ndarray) and value.ndim == 1 and len(value) == count


def _keep_boxes(sample: Sample, boxes: np.ndarray, width: int, height: int, min_size: float) -> Sample:
    """Clip boxes to the image, drop those narrower or shorter than ``min_size`` (and their
    labels and per-box extras)."""
    boxes = boxes.astype(np.float32).copy()
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    keep = ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)
    count = len(sample.boxes)
    extras = {k: v[keep] if _is_per_box(v, count) else v for k, v in sample.extras.items()}
    return replace(sample, boxes=boxes[keep], labels=sample.labels[keep], extras=extras)


def _resample(
    sample: Sample,
    image: np.ndarray,
    new_w: int,
    new_h: int,
    dx: int,
    dy: int,
    boxes: np.ndarray | None,
    min_size: float,
) -> Sample:
    """Everything but the (already transformed) image: resize dense targets to new_w x new_h,
    place them at (dx, dy) on a canvas of the image's size, update the camera, clip boxes."""
    src_h, src_w = sample.size
    out_h, out_w = image.shape[:2]

    def warp(plane: np.ndarray | None, fill: float, resize=resize_nearest) -> np.ndarray | None:
        return None if plane is None else place(resize(plane, new_w, new_h), out_w, out_h, dx, dy, fill)

    sx, sy = new_w / src_w, new_h / src_h
    extras = {k: warp(v, 0) if _is_dense(v, (src_h, src_w)) else v for k, v in sample.extras.items()}
    out = replace(
        sample,
        image=image,
        camera=sample.camera.scaled(sx, sy, dx + 0.5 * (sx - 1), dy + 0.5 * (sy - 1)),
        semantic=warp(sample.semantic, IGNORE_INDEX),
        depth=warp(sample.depth, 0.0, resize_depth),
        extras=extras,
    )
    if boxes is not None and sample.boxes is not None:
        out = _keep_boxes(out, boxes, out_w, out_h, min_size)
    return out


# --- transforms ----------------------------------------------------------------------------------
class Letterbox:
    """Resize keeping the aspect ratio and pad to ``height`` x ``width``: the service's exact
    geometry (``perception.contract.Letterbox``), extended to every target."""

    def __init__(self, height: int, width: int):
        self.height, self.width = height, width

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        src_h, src_w = sample.size
        box = LetterboxGeometry.fit(src_w, src_h, self.width, self.height)
        boxes = None if sample.boxes is None else box.boxes_to_model(sample.boxes)
        return _resample(sample, box.apply(sample.image), box.new_w, box.new_h, box.pad_x, box.pad_y, boxes, 1e-3)


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p``: boxes x → W − x, principal point cx → W − 1 − cx,
    roll → −roll."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        height, width = sample.size

        def flip(plane: np.ndarray | None) -> np.ndarray | None:
            return None if plane is None else np.ascontiguousarray(plane[:, ::-1])

        boxes = None
        if sample.boxes is not None:
            boxes = sample.boxes.copy()
            boxes[:, 0], boxes[:, 2] = width - sample.boxes[:, 2], width - sample.boxes[:, 0]
        camera = sample.camera
        roll = None if camera.roll_rad is None else -camera.roll_rad
        return replace(
            sample,
            image=flip(sample.image),
            camera=replace(camera, cx=width - 1 - camera.cx, roll_rad=roll),
            boxes=boxes,
            semantic=flip(sample.semantic),
            depth=flip(sample.depth),
            extras={k: flip(v) if _is_dense(v, (height, width)) else v for k, v in sample.extras.items()},
        )


class RandomScaleJitter:
    """Scale by a factor drawn from [min_scale, max_scale] and crop (at a random place) or pad
    back to the original size. Focal length scales with the image; boxes are clipped and those
    under ``min_box_size`` pixels wide or high are dropped."""

    def __init__(self, min_scale: float = 0.75, max_scale: float = 1.25, min_box_size: float = 2.0):
        if not 0 < min_scale <= max_scale:
            raise ValueError("need 0 < min_scale <= max_scale")
        self.min_scale, self.max_scale, self.min_box_size = min_scale, max_scale, min_box_size

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        height, width = sample.size
        scale = rng.uniform(self.min_scale, self.max_scale)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))

        def offset(new: int, size: int) -> int:
            # crop: shift left by up to the excess; pad: shift right by up to the slack
            return -int(rng.integers(0, new - size + 1)) if new >= size else int(rng.integers(0, size - new + 1))

        dx, dy = offset(new_w, width), offset(new_h, height)
        image = place(resize_image(sample.image, new_w, new_h), width, height, dx, dy, LETTERBOX_FILL)
        boxes = None
        if sample.boxes is not None:
            boxes = sample.boxes.astype(np.float32).copy()
            boxes[:, 0::2] = boxes[:, 0::2] * (new_w / width) + dx
            boxes[:, 1::2] = boxes[:, 1::2] * (new_h / height) + dy
        return _resample(sample, image, new_w, new_h, dx, dy, boxes, self.min_box_size)


# --- photometric: the image only, every label untouched --------------------------------------------
def _happens(p: float, rng: np.random.Generator) -> bool:
    """True with probability ``p``; p = 1 draws nothing (so always-on steps keep their random stream)."""
    return p >= 1 or rng.random() < p


class PhotometricJitter:
    """Brightness, contrast, saturation, hue and Gaussian noise on the image only, with probability ``p``.

    brightness/contrast/saturation: multiply by a factor in [1 − v, 1 + v]; hue: rotate by up to
    ±v of the colour circle; noise: standard deviation in 8-bit grey levels."""

    def __init__(
        self,
        brightness: float = 0.25,
        contrast: float = 0.25,
        saturation: float = 0.25,
        hue: float = 0.02,
        noise: float = 3.0,
        p: float = 1.0,
    ):
        self.brightness, self.contrast, self.saturation, self.hue, self.noise, self.p = (
            brightness,
            contrast,
            saturation,
            hue,
            noise,
            p,
        )

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if not _happens(self.p, rng):
            return sample
        image = sample.image.astype(np.float32) / 255.0
        image *= rng.uniform(1 - self.brightness, 1 + self.brightness)
        mean = float(cv2.cvtColor(np.clip(image, 0, 1), cv2.COLOR_RGB2GRAY).mean())
        image = (image - mean) * rng.uniform(1 - self.contrast, 1 + self.contrast) + mean
        if self.saturation or self.hue:
            hsv = cv2.cvtColor(np.clip(image, 0, 1), cv2.COLOR_RGB2HSV)  # float: H in [0, 360)
            hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(1 - self.saturation, 1 + self.saturation), 0, 1)
            hsv[..., 0] = (hsv[..., 0] + 360.0 * rng.uniform(-self.hue, self.hue)) % 360.0
            image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        if self.noise:
            image += rng.normal(0.0, self.noise / 255.0, image.shape).astype(np.float32)
        return replace(sample, image=(np.clip(image, 0, 1) * 255.0 + 0.5).astype(np.uint8))


class RandomGamma:
    """A tone curve ``out = in ** gamma`` with probability ``p``, gamma log-uniform in [low, high]
    (so g and 1/g are equally likely): another camera's or ISP's response."""

    def __init__(self, p: float = 0.5, low: float = 0.7, high: float = 1.5):
        self.p, self.low, self.high = p, low, high

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if not _happens(self.p, rng):
            return sample
        gamma = float(np.exp(rng.uniform(np.log(self.low), np.log(self.high))))
        lut = (np.linspace(0.0, 1.0, 256) ** gamma * 255.0 + 0.5).astype(np.uint8)
        return replace(sample, image=cv2.LUT(sample.image, lut))


def motion_kernel(length: int, angle_deg: float) -> np.ndarray:
    """A normalised line of ``length`` pixels (made odd, so the kernel is centred and the image
    does not shift against its labels) at ``angle_deg``."""
    size = 2 * (length // 2) + 1
    kernel = np.zeros((size, size), np.float32)
    kernel[size // 2] = 1.0
    centre = ((size - 1) / 2, (size - 1) / 2)
    kernel = cv2.warpAffine(kernel, cv2.getRotationMatrix2D(centre, angle_deg, 1.0), (size, size))
    return kernel / kernel.sum()


class RandomBlur:
    """With probability ``p``: motion blur (share ``motion`` of the blurs; a line of ``length`` px at a
    random angle) or defocus (Gaussian, σ in ``sigma`` px). Both kernels are centred: no label moves."""

    def __init__(
        self,
        p: float = 0.3,
        sigma: tuple[float, float] = (0.4, 1.5),
        motion: float = 0.5,
        length: tuple[int, int] = (3, 9),
    ):
        self.p, self.sigma, self.motion, self.length = p, tuple(sigma), motion, tuple(length)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if not _happens(self.p, rng):
            return sample
        if rng.random() < self.motion:
            kernel = motion_kernel(int(rng.integers(self.length[0], self.length[1] + 1)), rng.uniform(0.0, 180.0))
            image = cv2.filter2D(sample.image, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
        else:
            sigma = rng.uniform(*self.sigma)
            if sigma <= 0:
                return sample
            image = cv2.GaussianBlur(sample.image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
        return replace(sample, image=image)


class SensorNoise:
    """Camera noise with probability ``p``: per pixel and channel Gaussian with variance
    ``read² + shot · level`` (grey levels), the usual Poisson–Gaussian model of photon (shot) noise,
    which grows with the signal, plus read noise. read and shot are drawn from their ranges."""

    def __init__(self, p: float = 0.5, read: tuple[float, float] = (1.0, 6.0), shot: tuple[float, float] = (0.0, 0.1)):
        self.p, self.read, self.shot = p, tuple(read), tuple(shot)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if not _happens(self.p, rng):
            return sample
        read, shot = rng.uniform(*self.read), rng.uniform(*self.shot)
        image = sample.image.astype(np.float32)
        sigma = np.sqrt(np.float32(read * read) + np.float32(shot) * image)
        image += rng.standard_normal(image.shape, dtype=np.float32) * sigma
        return replace(sample, image=(np.clip(image, 0, 255) + 0.5).astype(np.uint8))


class RandomJpeg:
    """JPEG compression with probability ``p``: encode and decode with OpenCV at a quality drawn from
    [low, high] (blocking and chroma smearing as a dash camera's or a video stream's)."""

    def __init__(self, p: float = 0.5, low: int = 30, high: int = 95):
        self.p, self.low, self.high = p, low, high

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if not _happens(self.p, rng):
            return sample
        quality = int(rng.integers(self.low, self.high + 1))
        ok, data = cv2.imencode(
            ".jpg", cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return replace(sample, image=cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))


# --- recipes -------------------------------------------------------------------------------------
def photometric_steps(augment: AugmentConfig) -> list[Transform]:
    """``data.augment``'s image-only steps in a camera's order: optics (blur), the ISP's colour and
    tone (colour jitter, gamma), the sensor's noise, then compression (JPEG). Steps whose
    probability is 0 are left out."""
    a = augment
    candidates: list[tuple[float, Transform]] = [
        (a.blur_p, RandomBlur(a.blur_p, a.blur_sigma, a.motion_blur, a.motion_length)),
        (a.colour_p, PhotometricJitter(a.brightness, a.contrast, a.saturation, a.hue, a.colour_noise, a.colour_p)),
        (a.gamma_p, RandomGamma(a.gamma_p, *a.gamma)),
        (a.sensor_noise_p, SensorNoise(a.sensor_noise_p, a.read_noise, a.shot_noise)),
        (a.jpeg_p, RandomJpeg(a.jpeg_p, *a.jpeg_quality)),
    ]
    return [step for p, step in candidates if p > 0]


def training_transform(config: Config) -> Compose:
    """The training pipeline from ``config.data``: letterbox to the model's input first (cheap on
    big images; every source leaves it at the model's size), then scale jitter and flip at model
    size, then the photometric steps of ``data.augment`` (none when ``data.photometric`` is off)."""
    data, model = config.data, config.model
    steps: list[Transform] = [Letterbox(model.input_height, model.input_width)]
    low, high = data.scale_jitter
    if (low, high) != (1.0, 1.0):
        steps.append(RandomScaleJitter(low, high))
    if data.flip:
        steps.append(RandomHorizontalFlip(0.5))
    if data.photometric:
        steps.extend(photometric_steps(data.augmentation()))
    return Compose(steps)


def eval_transform(config: Config) -> Compose:
    """Evaluation: the service's letterbox only."""
    return Compose([Letterbox(config.model.input_height, config.model.input_width)])
