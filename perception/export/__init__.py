"""``perception export``: trained weights → ``models/<name>/<version>/`` (model.onnx, its checksum,
the weights for fine-tuning, the config, and a card)."""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx

from perception.card import gflops, real_frames, render, training_summary, write_section
from perception.classes import DETECTION_CLASSES, SEGMENTATION_CLASSES, SEGMENTATION_PALETTE
from perception.config import Config
from perception.contract import CHECKSUM_FILE, MODEL_FILE, Letterbox, ModelMetadata, sha256, write_checksum
from perception.data.registry import default_root
from perception.evaluate import onnx_predictor, score
from perception.export.graph import build_graph
from perception.export.verify import verify
from perception.machine import hardware
from perception.model import MultiTaskNet, load_trained
from perception.timing import onnx_latency_ms

__all__ = ["CHECKSUM_FILE", "MODEL_FILE", "export_model", "sha256", "write_checksum"]


def verification_frames(height: int, width: int, frames_dir: Path | None, seed: int = 0) -> np.ndarray:
    """Random frames plus real ones (letterboxed JPEG/PNG files from ``frames_dir``), uint8 [N, 3, H, W]."""
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(2)]
    if frames_dir:
        for path in sorted(frames_dir.glob("*.[jp][pn]g"))[:4]:
            image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
            frames.append(Letterbox.fit(image.shape[1], image.shape[0], width, height).apply(image))
    return np.stack(frames).transpose(0, 3, 1, 2).copy()


def export_model(
    weights: Path,
    out: Path,
    frames_dir: Path | None = None,
    metrics: dict | None = None,
    command: str = "",
    eval_count: int = 0,
    real: tuple[str, ...] = (),
) -> dict:
    """Export, verify and write the model folder (model, checksum, weights, config, card); with
    ``eval_count``, score the exported file on that many held-out synthetic frames and carry the
    headline figures in its metadata; with ``real``, score it on those real data sets too (the card's
    "Real frames" section, ``metrics-real.json``). Returns the verification report."""
    net, config = load_trained(weights)
    cfg = config.model
    metadata = model_metadata(config, out.name, metrics or {})
    model = build_graph(net, config, metadata)
    frames = verification_frames(cfg.input_height, cfg.input_width, frames_dir)
    focal = np.full(len(frames), cfg.canonical_focal_px, np.float32) * np.linspace(
        0.8, 1.2, len(frames), dtype=np.float32
    )
    report = verify(model, net, frames, focal)

    out.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, out / MODEL_FILE)
    write_checksum(out / MODEL_FILE)
    if weights.suffix == ".safetensors" and weights.resolve() != (out / "model.safetensors").resolve():
        shutil.copyfile(weights, out / "model.safetensors")
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    (out / "export.json").write_text(json.dumps({"verification": report, "command": command}, indent=2))
    scores = metrics or {}
    if eval_count:
        scores = evaluate_exported(out / MODEL_FILE, eval_count)
        (out / "metrics.json").write_text(json.dumps(scores, indent=2))
        model.metadata_props.clear()
        onnx.helper.set_model_props(
            model, ModelMetadata(**{**metadata.__dict__, "metrics": headline(scores)}).to_props()
        )
        onnx.save_model(model, out / MODEL_FILE)
        write_checksum(out / MODEL_FILE)
    write_model_card(net, config, out, scores, weights, command)
    if real:
        results = evaluate_real(out / MODEL_FILE, real)
        (out / "metrics-real.json").write_text(json.dumps(results, indent=2))
        if results:
            write_section(out / "card.md", "real", real_frames(results))
    return report


def model_metadata(config: Config, version: str, metrics: dict) -> ModelMetadata:
    """What the exported file says about itself: name, version, input, taxonomy, recipe and data hashes."""
    cfg = config.model
    return ModelMetadata(
        name=config.name,
        version=version,
        input_height=cfg.input_height,
        input_width=cfg.input_width,
        detection_classes=list(DETECTION_CLASSES),
        segmentation_classes=list(SEGMENTATION_CLASSES),
        segmentation_palette=[list(c) for c in SEGMENTATION_PALETTE],
        depth_unit="m",
        canonical_focal_px=cfg.canonical_focal_px,
        default_focal_px=cfg.canonical_focal_px,
        recipe_hash=config.digest(),
        data_hash=hashlib.sha256(json.dumps(config.data.__dict__, sort_keys=True).encode()).hexdigest()[:16],
        metrics=metrics,
    )


def headline(metrics: dict) -> dict:
    """The figures carried in the ONNX metadata (the full set is in metrics.json)."""
    pick = {"detection": ("mAP", "mAP50"), "segmentation": ("mIoU",), "depth": ("AbsRel", "RMSE", "delta1")}
    figures = {key: round(metrics[task][key], 4) for task, keys in pick.items() if task in metrics for key in keys}
    return figures | {"frames": metrics.get("frames", 0), "split": metrics.get("data", {}).get("split", "")}


def evaluate_exported(model_path: Path, count: int) -> dict:
    """``count`` held-out synthetic test frames scored on the exported file."""
    return score(*onnx_predictor(model_path), "synthetic", split="test", count=count)


def evaluate_real(model_path: Path, datasets: tuple[str, ...]) -> dict[str, dict]:
    """The exported file scored on each real data set (its default folder, its protocol's split, every
    frame); a set whose folder is missing is left out, with a message."""
    predictor = onnx_predictor(model_path)
    results = {}
    for name in datasets:
        try:
            default_root(name)
        except FileNotFoundError as error:
            print(f"real evaluation: {name} left out: {error}", file=sys.stderr)
            continue
        results[name] = score(*predictor, name)
    return results


def write_model_card(net: MultiTaskNet, config: Config, out: Path, metrics: dict, weights: Path, command: str) -> None:
    cfg = config.model
    facts = {
        "gflops": gflops(net, cfg.input_height, cfg.input_width),
        "params_m": sum(p.numel() for p in net.parameters()) / 1e6,
        "latency_ms": onnx_latency_ms(out / MODEL_FILE, cfg.input_height, cfg.input_width),
        "hardware": hardware(),
        "recipe_hash": config.digest(),
        "export_command": command or f"perception export {weights} --out {out}",
    }
    training = training_summary(weights.parent)
    body = render(config.name, out.name, config.to_dict(), metrics, training, facts)
    write_section(out / "card.md", "card", body, first=True)


def export_command(args: argparse.Namespace) -> int:
    metrics = json.loads(args.metrics.read_text()) if args.metrics else None
    command = " ".join(["perception", *sys.argv[1:]])
    real = tuple(name for name in args.real.split(",") if name)
    report = export_model(args.checkpoint, args.out, args.frames, metrics, command, args.eval_count, real)
    print(json.dumps(report, indent=2))
    print(f"wrote {args.out / MODEL_FILE}")
    return 0
