"""The models a benchmark needs besides the one measured: a random-init model of the default
architecture, and single-task networks of the same backbone and input size."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from perception.export import MODEL_FILE

if TYPE_CHECKING:
    from perception.config import Config


def export_random_init(out: Path, config: Config | None = None, seed: int = 0) -> Path:
    """The network of ``config`` (default: ``ModelConfig()`` defaults) with random weights, exported
    to ``out``/1/ (no evaluation). Same architecture and cost as a trained model of that config.
    Returns the version folder."""
    import torch

    from perception.config import load_config
    from perception.export import export_model
    from perception.model.net import MultiTaskNet
    from perception.train import WEIGHTS, save_weights

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
    import onnx
    import torch

    from perception.config import Config
    from perception.contract import ModelMetadata
    from perception.export.graph import build_graph
    from perception.model.net import MultiTaskNet

    config = Config.from_dict(json.loads((model_dir / "config.json").read_text()))
    meta = ModelMetadata.from_props(
        {p.key: p.value for p in onnx.load(model_dir / MODEL_FILE, load_external_data=False).metadata_props}
    )
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for task in ("detection", "segmentation", "depth"):
        config.model.tasks = [task]
        torch.manual_seed(0)
        net = MultiTaskNet(config.model).eval()
        paths[task] = out / f"{task}.onnx"
        onnx.save_model(build_graph(net, config, meta), paths[task])
    return paths
