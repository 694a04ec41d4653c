"""The in-memory synthetic data set: frame ``index`` of ``split`` is rendered on demand.

Each frame's random generator is seeded with ``(SPLIT_SEEDS[split].start + index, seed)``; the
three splits use disjoint ranges of that first number, so no frame of one split can appear in
another whatever ``seed`` is.
"""

from __future__ import annotations

import cv2
import numpy as np

from perception.data.sample import Sample
from perception.data.synthetic.renderer import Frame, render
from perception.data.synthetic.scene import Scene, sample_scene

SPLIT_SEEDS: dict[str, range] = {
    "train": range(0, 1_000_000_000),
    "val": range(1_000_000_000, 1_100_000_000),
    "test": range(1_100_000_000, 1_200_000_000),
}


def frame_seed(split: str, index: int) -> int:
    seeds = SPLIT_SEEDS[split]
    if not 0 <= index < len(seeds):
        raise IndexError(f"index {index} outside split {split!r} ({len(seeds)} frames)")
    return seeds[index]


def frame_id(split: str, index: int, seed: int = 0) -> str:
    return f"{split}-s{seed}-{index:07d}"


def make_scene(split: str, index: int, seed: int = 0, height: int = 384, width: int = 640) -> Scene:
    rng = np.random.default_rng([frame_seed(split, index), seed])
    return sample_scene(rng, width, height)


def encode_jpeg(image_rgb: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def to_sample(frame: Frame, sample_id: str, jpeg: bool = True) -> Sample:
    """A :class:`Sample` from a rendered frame; ``jpeg`` applies the frame's JPEG compression."""
    image = decode_jpeg(encode_jpeg(frame.image, frame.jpeg_quality)) if jpeg else frame.image
    return Sample(
        image=image,
        camera=frame.camera,
        boxes=frame.boxes,
        labels=frame.labels,
        semantic=frame.semantic,
        depth=frame.depth,
        extras={
            "truncation": frame.truncation,
            "occlusion": frame.occlusion,
            "instance": frame.instance,
            "source": "synthetic",
            "id": sample_id,
        },
    )


class SyntheticDataset:
    """``length`` procedurally rendered frames of ``split`` at ``height`` x ``width``.

    Deterministic per (seed, split, index); any resolution renders the same world.
    """

    def __init__(
        self,
        split: str = "train",
        length: int = 10000,
        height: int = 384,
        width: int = 640,
        seed: int = 0,
        jpeg: bool = True,
    ) -> None:
        if split not in SPLIT_SEEDS:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLIT_SEEDS)}")
        if length > len(SPLIT_SEEDS[split]):
            raise ValueError(f"split {split!r} has at most {len(SPLIT_SEEDS[split])} frames")
        self.split, self.length, self.height, self.width, self.seed, self.jpeg = (
            split,
            length,
            height,
            width,
            seed,
            jpeg,
        )

    def __len__(self) -> int:
        return self.length

    def scene(self, index: int) -> Scene:
        return make_scene(self.split, index, self.seed, self.height, self.width)

    def frame(self, index: int) -> Frame:
        return render(self.scene(index))

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.length:
            raise IndexError(index)
        return to_sample(self.frame(index), frame_id(self.split, index, self.seed), self.jpeg)
