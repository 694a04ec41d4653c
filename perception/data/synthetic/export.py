"""``perception data synth``: write synthetic frames to disk, and ``SynthFolderDataset`` to read them.

Layout of ``OUT`` (one ``{id}`` per frame, e.g. ``train-s0-0000042``)::

    dataset.json          version, generator hash, split, seed, count, width, height, classes, encodings
    images/{id}.jpg       the noisy JPEG-compressed RGB image the model sees (quality varies per frame)
    semantic/{id}.png     uint8 indices into SEGMENTATION_CLASSES (255 = ignore)
    depth/{id}.png        uint16 depth in 1/256 m (value / 256 = metres along the optical axis, 0 = invalid)
    instance/{id}.png     uint16 instance ids: 0 background, i + 1 = box i of the label file
    labels/{id}.json      boxes (x1, y1, x2, y2 pixels), class names and indices, truncation, occlusion,
                          camera (fx, fy, cx, cy, height_m, pitch_rad, roll_rad)

The JPEG file is byte-for-byte what ``SyntheticDataset`` decodes in memory, so a folder sample equals
the in-memory one except for depth, which is quantised to 1/256 m.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import time
from pathlib import Path

import cv2
import numpy as np

from perception.classes import DETECTION_CLASSES, SEGMENTATION_CLASSES
from perception.data.sample import Camera, Sample
from perception.data.synthetic.dataset import SyntheticDataset, encode_jpeg, frame_id

FORMAT_VERSION = 1
DEPTH_SCALE = 256.0  # depth PNG units per metre
SUBDIRS = ("images", "semantic", "depth", "instance", "labels")


def generator_hash() -> str:
    """Hash of the generator's source: two folders with the same hash hold the same world."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def write_frame(root: Path, dataset: SyntheticDataset, index: int) -> str:
    """Render frame ``index`` of ``dataset`` and write its files under ``root``; returns its id."""
    frame = dataset.frame(index)
    fid = frame_id(dataset.split, index, dataset.seed)
    (root / "images" / f"{fid}.jpg").write_bytes(encode_jpeg(frame.image, frame.jpeg_quality))
    png = [cv2.IMWRITE_PNG_COMPRESSION, 1]  # fast; the label maps compress well anyway
    cv2.imwrite(str(root / "semantic" / f"{fid}.png"), frame.semantic, png)
    depth = np.clip(np.rint(frame.depth * DEPTH_SCALE), 0, 65535).astype(np.uint16)
    cv2.imwrite(str(root / "depth" / f"{fid}.png"), depth, png)
    cv2.imwrite(str(root / "instance" / f"{fid}.png"), frame.instance.astype(np.uint16), png)
    cam = frame.camera
    labels = {
        "id": fid,
        "index": index,
        "boxes": np.round(frame.boxes.astype(float), 3).tolist(),
        "labels": frame.labels.tolist(),
        "classes": [DETECTION_CLASSES[i] for i in frame.labels],
        "truncation": np.round(frame.truncation.astype(float), 4).tolist(),
        "occlusion": np.round(frame.occlusion.astype(float), 4).tolist(),
        "camera": {k: getattr(cam, k) for k in ("fx", "fy", "cx", "cy", "height_m", "pitch_rad", "roll_rad")},
        "jpeg_quality": frame.jpeg_quality,
    }
    (root / "labels" / f"{fid}.json").write_text(json.dumps(labels))
    return fid


_WORKER: dict = {}


def _init_worker(root: str, split: str, count: int, height: int, width: int, seed: int) -> None:
    cv2.setNumThreads(1)  # one process per core already
    _WORKER["root"] = Path(root)
    _WORKER["dataset"] = SyntheticDataset(split, count, height, width, seed)


def _work(index: int) -> str:
    return write_frame(_WORKER["root"], _WORKER["dataset"], index)


def write_dataset(
    out: Path,
    count: int,
    split: str = "train",
    height: int = 384,
    width: int = 640,
    seed: int = 0,
    workers: int = 0,
    progress: bool = False,
) -> dict:
    """Write ``count`` frames of ``split`` to ``out`` (see the module docstring); returns dataset.json."""
    out = Path(out)
    for sub in SUBDIRS:
        (out / sub).mkdir(parents=True, exist_ok=True)
    workers = workers or os.cpu_count() or 1
    args = (str(out), split, count, height, width, seed)
    start = time.perf_counter()
    if workers == 1:
        _init_worker(*args)
        ids = []
        for i in range(count):
            ids.append(_work(i))
            if progress and (i + 1) % 100 == 0:
                print(f"{i + 1}/{count} frames", flush=True)
    else:
        # spawn, not fork: a forked child can inherit OpenCV's or BLAS's thread pool mid-lock and hang
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=args) as pool:
            ids = []
            for fid in pool.imap(_work, range(count), chunksize=8):
                ids.append(fid)
                if progress and len(ids) % 100 == 0:
                    print(f"{len(ids)}/{count} frames", flush=True)
    meta = {
        "format_version": FORMAT_VERSION,
        "generator": "perception.data.synthetic",
        "generator_hash": generator_hash(),
        "split": split,
        "seed": seed,
        "count": count,
        "width": width,
        "height": height,
        "ids": ids,
        "detection_classes": list(DETECTION_CLASSES),
        "segmentation_classes": list(SEGMENTATION_CLASSES),
        "depth_encoding": f"uint16 PNG, metres * {DEPTH_SCALE:g}, 0 = invalid",
        "instance_encoding": "uint16 PNG, 0 = background, i + 1 = box i",
        "box_format": "x1, y1, x2, y2 in pixels; x2, y2 exclusive (pixel edges)",
    }
    (out / "dataset.json").write_text(json.dumps(meta, indent=1))
    if progress:
        elapsed = time.perf_counter() - start
        print(f"wrote {count} frames to {out} in {elapsed:.1f} s ({count / max(elapsed, 1e-9):.1f} frames/s)")
    return meta


def synth_command(args: argparse.Namespace) -> int:
    write_dataset(
        args.out, args.count, args.split, args.height, args.width, getattr(args, "seed", 0), args.workers, progress=True
    )
    return 0


class SynthFolderDataset:
    """Reads a folder written by ``perception data synth`` back as :class:`Sample` s."""

    def __init__(self, root: Path | str, split: str | None = None) -> None:
        """``split`` is accepted for the registry's ``Class(root, split)`` call; a folder holds one split."""
        self.root = Path(root)
        meta_path = self.root / "dataset.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path} not found: not a folder written by `perception data synth`")
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{root}: format version {self.meta.get('format_version')}, expected {FORMAT_VERSION}")
        self.ids: list[str] = list(self.meta["ids"])
        self.split: str = self.meta["split"]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Sample:
        fid = self.ids[index]
        labels = json.loads((self.root / "labels" / f"{fid}.json").read_text())
        image = cv2.imread(str(self.root / "images" / f"{fid}.jpg"), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(self.root / "images" / f"{fid}.jpg")
        semantic = cv2.imread(str(self.root / "semantic" / f"{fid}.png"), cv2.IMREAD_UNCHANGED)
        depth = cv2.imread(str(self.root / "depth" / f"{fid}.png"), cv2.IMREAD_UNCHANGED)
        instance = cv2.imread(str(self.root / "instance" / f"{fid}.png"), cv2.IMREAD_UNCHANGED)
        return Sample(
            image=cv2.cvtColor(image, cv2.COLOR_BGR2RGB),
            camera=Camera(**labels["camera"]),
            boxes=np.array(labels["boxes"], np.float32).reshape(-1, 4),
            labels=np.array(labels["labels"], np.int64),
            semantic=semantic,
            depth=depth.astype(np.float32) / DEPTH_SCALE,
            extras={
                "truncation": np.array(labels["truncation"], np.float32),
                "occlusion": np.array(labels["occlusion"], np.float32),
                "instance": instance.astype(np.int32),
                "source": "synthetic",
                "id": fid,
            },
        )
