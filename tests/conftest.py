"""Shared fixtures: the real frames, the bundled model, a tiny model trained in seconds (needs the
train extra), and real servers over loopback (``serve``, ``bundled_server``)."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.servers import RunningServer, start_server, stop_server

REPO = Path(__file__).resolve().parent.parent
FRAMES_DIR = REPO / "tests" / "data" / "frames"
FRAMES = sorted(FRAMES_DIR.glob("*.jpg"))
BUNDLED_MODEL = REPO / "models" / "drivenet"


@pytest.fixture(scope="session")
def frames() -> list[Path]:
    assert len(FRAMES) == 6, "tests/data/frames should hold the six BDD100K frames"
    return FRAMES


class BlocksWorld:
    """A trivially learnable world for fast training tests: sky over road, one red car, depth
    that falls with the image row. Real training uses the synthetic driving world."""

    def __init__(self, length: int = 64, height: int = 96, width: int = 160, labels: str = "all"):
        self.length, self.height, self.width, self.labels = length, height, width, labels

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        from perception.classes import seg_index
        from perception.data.sample import Camera, Sample

        rng = np.random.default_rng(i)
        h, w = self.height, self.width
        horizon = h // 2
        image = np.zeros((h, w, 3), np.uint8)
        image[:horizon] = (70, 130, 180)
        image[horizon:] = (128, 64, 128)
        semantic = np.full((h, w), seg_index("road"), np.uint8)
        semantic[:horizon] = seg_index("sky")
        x1, y1 = int(rng.integers(5, w - 40)), int(rng.integers(horizon - 5, h - 25))
        x2, y2 = x1 + int(rng.integers(12, 35)), y1 + int(rng.integers(8, 20))
        image[y1:y2, x1:x2] = (200, 30, 30)
        semantic[y1:y2, x1:x2] = seg_index("vehicle")
        rows = np.arange(h, dtype=np.float32)[:, None]
        depth = np.where(rows > horizon, 100.0 / np.maximum(rows - horizon, 1), 0).repeat(w, 1).astype(np.float32)
        sample = Sample(image, Camera(100.0, 100.0, w / 2, h / 2), np.array([[x1, y1, x2, y2]], np.float32),
                        np.array([0], np.int64), semantic, depth)  # fmt: skip
        if self.labels == "boxes":
            sample.semantic = sample.depth = None
        return sample


TINY_OVERRIDES = [
    "model.input_height=96",
    "model.input_width=160",
    "train.batch_size=4",
    "train.warmup_steps=5",
    "train.log_every=5",
    "train.lr=0.003",
    "data.workers=0",
]


def train_tiny(out: Path, steps: int = 40, extra: list[str] = (), dataset_kwargs: dict | None = None, **kwargs) -> Path:
    from perception.config import load_config
    from perception.data.loader import TensorDataset
    from perception.train import train

    config = load_config(None, [*TINY_OVERRIDES, f"train.steps={steps}", *extra])
    dataset = TensorDataset(BlocksWorld(**(dataset_kwargs or {})), lambda s, rng: s)
    return train(config, out, dataset=dataset, **kwargs)


def tiny_build_key() -> str:
    """A digest of everything the tiny run and its export depend on: the training side's code and
    configs, this file, the verification frames and the torch and onnx versions."""
    import onnx
    import torch

    digest = hashlib.sha256(f"{torch.__version__} {onnx.__version__}".encode())
    for path in sorted([*(REPO / "perception").rglob("*.py"), *(REPO / "configs").rglob("*.toml"), *FRAMES]):
        digest.update(str(path.relative_to(REPO)).encode() + path.read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:16]


def build_tiny(root: Path) -> Path:
    """Train the tiny model into ``root/run`` and export it to ``root/models/tiny/1``."""
    from perception.export import export_model

    run = train_tiny(root / "run")
    export_model(run / "model.safetensors", root / "models" / "tiny" / "1", frames_dir=FRAMES_DIR)
    return root


@pytest.fixture(scope="session")
def tiny_build(request, tmp_path_factory) -> Path:
    """A folder with the tiny run (``run/``) and its export (``models/tiny/1/``), built once per change
    to what they depend on and kept in pytest's cache: training and exporting take about 20 s, most of
    the quick loop's time. A clean checkout (CI) or ``-p no:cacheprovider`` builds it afresh."""
    pytest.importorskip("torch", reason="the tiny model is trained with torch: pip install -e '.[train]'")
    cache = getattr(request.config, "cache", None)
    if cache is None:
        return build_tiny(tmp_path_factory.mktemp("tiny_build"))
    root = cache.mkdir(f"tiny_build_{tiny_build_key()}")
    if (root / "done").exists():
        return root
    building = build_tiny(Path(tempfile.mkdtemp(dir=root.parent)))  # renamed into place only when complete
    (building / "done").touch()
    shutil.rmtree(root)
    building.rename(root)
    for stale in root.parent.glob("tiny_build_*"):  # builds for code that has changed since
        if stale != root:
            shutil.rmtree(stale, ignore_errors=True)
    return root


@pytest.fixture(scope="session")
def tiny_run(tiny_build, tmp_path_factory) -> Path:
    """The tiny model's run folder (a copy: tests may write beside it)."""
    return Path(shutil.copytree(tiny_build / "run", tmp_path_factory.mktemp("tiny") / "run"))


@pytest.fixture(scope="session")
def tiny_model(tiny_build, tmp_path_factory) -> Path:
    """An exported tiny model folder, models/<name>/ with version 1/ (a copy: tests add variants to it)."""
    return Path(shutil.copytree(tiny_build / "models" / "tiny", tmp_path_factory.mktemp("models") / "tiny"))


@pytest.fixture(scope="module")
def serve(tmp_path_factory) -> Iterator[Callable[[dict[str, str]], RunningServer]]:
    """Starts servers: ``serve(env)`` runs ``python -m service`` with ``env`` on a free loopback port
    and returns once it is ready (its log in ``.log``). Every server still running when the test
    module ends is stopped; a test that needs a server stopped sooner calls ``stop_server``."""
    started: list[RunningServer] = []

    def start(env: dict[str, str]) -> RunningServer:
        started.append(start_server(env, tmp_path_factory.mktemp("server") / "server.log"))
        return started[-1]

    yield start
    for server in started:
        stop_server(server)


@pytest.fixture(scope="module")
def bundled_server(serve) -> RunningServer:
    """The real server on the bundled model, over loopback."""
    return serve({"PERCEPTION_MODEL": str(BUNDLED_MODEL)})
