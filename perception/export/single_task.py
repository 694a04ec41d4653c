"""What a multi- against single-task latency comparison needs besides the measured model: a
random-init export of an architecture, single-task networks of the same backbone and input size,
and the comparison itself (``perception bench``'s ``tasks`` section and ``perception study``'s
latency). Weights do not change the cost, so every network here has random weights."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch

from perception import timing
from perception.config import TASKS, Config, load_config
from perception.contract import MODEL_FILE, ModelMetadata
from perception.export import export_model
from perception.export.graph import build_graph
from perception.model import WEIGHTS, MultiTaskNet, save_weights


def export_random_init(out: Path, config: Config | None = None, seed: int = 0) -> Path:
    """The network of ``config`` (default: ``ModelConfig()`` defaults) with random weights, exported
    to ``out``/1/ (no evaluation). Same architecture and cost as a trained model of that config.
    Returns the version folder."""
    config = config or load_config(None)
    torch.manual_seed(seed)
    net = MultiTaskNet(config.model).eval()
    with tempfile.TemporaryDirectory() as tmp:
        save_weights(net, config, Path(tmp))
        export_model(Path(tmp) / WEIGHTS, out / "1", eval_count=0)
    return out / "1"


def export_single_task(model_dir: Path, out: Path) -> dict[str, Path]:
    """One ONNX graph per task (detection with its NMS, segmentation, depth), each a network of the
    model's backbone, neck and input size with one head, random weights. Returns {task: path}."""
    config = Config.from_dict(json.loads((model_dir / "config.json").read_text()))
    meta = ModelMetadata.from_props(
        {p.key: p.value for p in onnx.load(model_dir / MODEL_FILE, load_external_data=False).metadata_props}
    )
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for task in TASKS:
        config.model.tasks = [task]
        torch.manual_seed(0)
        net = MultiTaskNet(config.model).eval()
        paths[task] = out / f"{task}.onnx"
        onnx.save_model(build_graph(net, config, meta), paths[task])
    return paths


def multi_vs_single_task(model_dir: Path, multi: Path, frames: np.ndarray, focal: float, threads: int, tmp: Path,
                         repeats: int = timing.REPEATS, min_seconds: float = timing.MIN_SECONDS) -> dict:  # fmt: skip
    """One multi-task pass (``multi``) against the three single-task networks of ``model_dir``'s
    architecture (all FP32, batch 1, interleaved repeats in this process): {latency_ms, three_single_ms,
    ratio}."""
    singles = export_single_task(model_dir, tmp / "single-task")
    timed = timing.throughput({"multi-task": multi, **singles}, frames, focal, (1,), repeats, min_seconds, threads)
    row = {name: value["latency_ms"] for name, value in timed["1"].items()}
    three = sum(row[t] for t in singles)
    return {"latency_ms": row, "three_single_ms": round(three, 3), "ratio": round(row["multi-task"] / three, 3)}
