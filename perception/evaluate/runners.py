"""Running a model over held-out frames: a predictor for an exported ONNX file or a torch
checkpoint (both return the contract's outputs), the held-out samples letterboxed exactly as the
service letterboxes frames, and ``evaluate``, which feeds one to the other and scores the answers
under the data set's ``Protocol``; ``score`` does all three for one held-out split."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from perception.contract import (
    INPUT_FOCAL,
    INPUT_IMAGES,
    OUTPUT_DEPTH,
    OUTPUT_DETECTIONS,
    OUTPUT_NUM_DETECTIONS,
    OUTPUT_SEMANTIC,
    ModelMetadata,
)
from perception.contract import Letterbox as LetterboxGeometry
from perception.data.registry import open_dataset
from perception.data.sample import Sample
from perception.data.transforms import Letterbox
from perception.evaluate.metrics import Evaluator
from perception.evaluate.protocols import SYNTHETIC, Protocol, protocol_for
from perception.evaluate.reference import reference_outputs
from perception.model import load_trained

Predictor = Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]
SOURCE = "eval_source"  # extras key of a letterboxed sample: its SourceFrame, when scored at source resolution


@dataclass(frozen=True)
class SourceFrame:
    """The frame before the letterbox and how the letterbox placed it: what a protocol that scores at
    the source resolution compares against."""

    sample: Sample
    letterbox: LetterboxGeometry

    @property
    def focal_px(self) -> float:
        """The focal length the service passes the model: the source camera's fx times the letterbox
        scale (``service.pipeline``), not the rounded new_w / src_w the transform's camera carries."""
        return float(self.sample.camera.fx * self.letterbox.scale)


def to_source(outputs: dict[str, np.ndarray], letterbox: LetterboxGeometry) -> dict[str, np.ndarray]:
    """One frame's outputs in source-image pixels, as the service maps them for ``output_scale=1``:
    boxes through ``boxes_to_source``, the class map nearest-neighbour, depth bilinear."""
    out = dict(outputs)
    if OUTPUT_DETECTIONS in outputs:
        dets = outputs[OUTPUT_DETECTIONS].copy()
        n = int(outputs[OUTPUT_NUM_DETECTIONS])
        dets[:n, :4] = letterbox.boxes_to_source(dets[:n, :4])
        out[OUTPUT_DETECTIONS] = dets
    if OUTPUT_SEMANTIC in outputs:
        out[OUTPUT_SEMANTIC] = letterbox.map_to_source(outputs[OUTPUT_SEMANTIC], nearest=True)
    if OUTPUT_DEPTH in outputs:
        out[OUTPUT_DEPTH] = letterbox.map_to_source(outputs[OUTPUT_DEPTH], nearest=False)
    return out


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


def evaluate(
    predict: Predictor, samples: Iterable[Sample], batch_size: int = 8, protocol: Protocol = SYNTHETIC
) -> dict:
    """Run ``predict`` over already letterboxed samples and score it under ``protocol``. A sample
    that carries its ``SourceFrame`` (``held_out_samples`` of an ``at_source`` protocol) is scored
    against the source frame, its outputs mapped back there."""
    evaluator = Evaluator(protocol)
    batch: list[Sample] = []

    def flush() -> None:
        images = np.stack([s.image.transpose(2, 0, 1) for s in batch])
        sources: list[SourceFrame | None] = [s.extras.get(SOURCE) for s in batch]
        focal = np.array([src.focal_px if src else s.camera.fx for s, src in zip(batch, sources, strict=True)],
                         np.float32)  # fmt: skip
        outputs = predict(images, focal)
        for i, (sample, source) in enumerate(zip(batch, sources, strict=True)):
            frame = {k: v[i] for k, v in outputs.items()}
            if source is None:
                evaluator.add(sample, frame)
            else:
                evaluator.add(source.sample, to_source(frame, source.letterbox))
        batch.clear()

    for sample in samples:
        batch.append(sample)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return evaluator.summary()


def letterboxed(original: Sample, height: int, width: int, at_source: bool) -> Sample:
    """``original`` letterboxed to the model input as the service letterboxes frames; with
    ``at_source`` it carries its ``SourceFrame`` (extras ``SOURCE``) to be scored against."""
    sample = Letterbox(height, width)(original)
    if at_source:
        geometry = LetterboxGeometry.fit(original.size[1], original.size[0], width, height)
        sample.extras = {**sample.extras, SOURCE: SourceFrame(original, geometry)}
    return sample


def held_out_samples(
    dataset: str, root: Path | None, split: str, count: int | None, height: int, width: int, seed: int = 0
) -> Iterator[Sample]:
    """The first ``count`` samples of a held-out split (every one when ``count`` is None), letterboxed
    to the model input (with their source frames when the data set's protocol scores at the source
    resolution)."""
    length = {} if count is None else {"length": count}  # the procedural world's length; real sets have theirs
    source = open_dataset(dataset, root, split, size=(height, width), seed=seed, **length)
    at_source = protocol_for(dataset).at_source
    for i in range(len(source) if count is None else min(count, len(source))):
        yield letterboxed(source[i], height, width, at_source)


def score(
    predict: Predictor,
    height: int,
    width: int,
    dataset: str,
    root: Path | None = None,
    split: str | None = None,
    count: int | None = None,
) -> dict:
    """``predict`` scored on ``dataset`` under its protocol: the protocol's split unless ``split`` names
    another, the first ``count`` frames (every frame when None). The metrics carry a ``data`` record
    (data set, split, resolution and, for a real set, the protocol's name)."""
    protocol = protocol_for(dataset)
    split = split or protocol.split
    metrics = evaluate(predict, held_out_samples(dataset, root, split, count, height, width), protocol=protocol)
    metrics["data"] = {"dataset": dataset, "split": split, "resolution": [height, width]}
    if protocol is not SYNTHETIC:
        metrics["data"]["protocol"] = protocol.name
    return metrics
