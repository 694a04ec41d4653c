"""``perception eval MODEL``: score a checkpoint or an exported model on held-out data; print the
table, and with ``--out`` write it and the metrics JSON."""

from __future__ import annotations

import argparse
import json

from perception.contract import resolve_model_path
from perception.evaluate.metrics import markdown_table
from perception.evaluate.runners import evaluate, held_out_samples, onnx_predictor, torch_predictor


def eval_command(args: argparse.Namespace) -> int:
    model = resolve_model_path(args.model)  # a model folder means its newest version, as the service picks it
    predictor_of = onnx_predictor if model.suffix == ".onnx" else torch_predictor
    predict, height, width = predictor_of(model)
    samples = held_out_samples(args.dataset, args.root, args.split, args.count, height, width)
    metrics = evaluate(predict, samples)
    metrics["data"] = {"dataset": args.dataset, "split": args.split, "resolution": [height, width]}
    table = markdown_table(metrics)
    print(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        (args.out / "metrics.md").write_text(table + "\n")
    return 0
