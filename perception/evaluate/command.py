"""``perception eval MODEL``: score a checkpoint or an exported model on held-out data under the data
set's protocol; print the table, and with ``--out`` write it and the metrics JSON."""

from __future__ import annotations

import argparse
import json

from perception.contract import resolve_model_path
from perception.evaluate.metrics import markdown_table
from perception.evaluate.protocols import SYNTHETIC, Protocol, protocol_for
from perception.evaluate.runners import onnx_predictor, score, torch_predictor


def report(metrics: dict, protocol: Protocol) -> str:
    """The Markdown table; a data set with its own protocol gets a heading and the protocol's rules."""
    table = markdown_table(metrics)
    if protocol is SYNTHETIC:
        return table
    data = metrics["data"]
    height, width = data["resolution"]
    lines = [f"### {data['dataset']} {data['split']}: {metrics['frames']} frames, model input {width}x{height}", ""]
    return "\n".join([*lines, *(f"- {line}" for line in protocol.describe()), "", table])


def eval_command(args: argparse.Namespace) -> int:
    model = resolve_model_path(args.model)  # a model folder means its newest version, as the service picks it
    predictor_of = onnx_predictor if model.suffix == ".onnx" else torch_predictor
    predict, height, width = predictor_of(model)
    metrics = score(predict, height, width, args.dataset, args.root, args.split, args.count)
    table = report(metrics, protocol_for(args.dataset))
    print(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        (args.out / "metrics.md").write_text(table + "\n")
    return 0
