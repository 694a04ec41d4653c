"""Running a model over held-out frames: a predictor for an exported ONNX file or a torch
checkpoint (both return the contract's outputs), the held-out samples letterboxed exactly as the
service letterboxes frames, and ``evaluate``, which feeds one to the other and scores the answers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort

from perception.contract import INPUT_FOCAL, INPUT_IMAGES, ModelMetadata
from perception.data.registry import open_dataset
from perception.data.sample import Sample
from perception.data.transforms import Letterbox
from perception.evaluate.metrics import Evaluator
from perception.evaluate.reference import reference_outputs
from perception.model import load_trained

Predictor = Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]


def run_onnx(session: ort.InferenceSession, images: np.ndarray, focal_px: np.ndarray) -> dict[str, np.ndarray]:
    """One run of an exported model: uint8 images [B, 3, H, W] and focal lengths [B] → outputs by name."""
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {INPUT_IMAGES: images, INPUT_FOCAL: focal_px}), strict=True))


def onnx_predictor(path: Path) -> tuple[Predictor, int, int]:
    """A predictor running the exported file on ONNX Runtime (CPU), and its input height and width."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map)
    return (lambda images, focal: run_onnx(session, images, focal)), meta.input_height, meta.input_width


def torch_predictor(path: Path) -> tuple[Predictor, int, int]:
    """A predictor running trained weights as the exported graph would (``reference_outputs``), and
    the input height and width."""
    net, config = load_trained(path)
    return (
        (lambda images, focal: reference_outputs(net, images, focal)),
        config.model.input_height,
        config.model.input_width,
    )


def evaluate(predict: Predictor, samples: Iterable[Sample], batch_size: int = 8) -> dict:
    """Run ``predict`` over already letterboxed samples and score it."""
    evaluator = Evaluator()
    batch: list[Sample] = []

    def flush() -> None:
        images = np.stack([s.image.transpose(2, 0, 1) for s in batch])
        focal = np.array([s.camera.fx for s in batch], np.float32)
        outputs = predict(images, focal)
        for i, sample in enumerate(batch):
            evaluator.add(sample, {k: v[i] for k, v in outputs.items()})
        batch.clear()

    for sample in samples:
        batch.append(sample)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return evaluator.summary()


def held_out_samples(
    dataset: str, root: Path | None, split: str, count: int, height: int, width: int, seed: int = 0
) -> Iterator[Sample]:
    """The first ``count`` samples of a held-out split, letterboxed to the model input."""
    source = open_dataset(dataset, root, split, length=count, size=(height, width), seed=seed)
    letterbox = Letterbox(height, width)
    rng = np.random.default_rng(0)
    for i in range(min(count, len(source))):
        yield letterbox(source[i], rng)
