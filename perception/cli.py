"""The ``perception`` command line: one entry point, one subcommand per job.

Arguments are declared here (a training run's in ``perception.config``, which ``torchrun -m
perception.train`` reads too); each handler lives in its own module and is imported only when its
command runs (by name, through ``importlib``), so ``perception --help`` and ``perception infer`` start
without torch and ``perception infer`` works in the serving install, which has no torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from perception.bench.arguments import add_bench_arguments
from perception.config import TRAIN_HELP, add_train_arguments
from perception.data.registry import DATASET_NAMES


def _handler(target: str):
    def run(args: argparse.Namespace) -> int | None:
        module, func = target.split(":")
        return getattr(importlib.import_module(module), func)(args)

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perception", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="make and inspect data sets").add_subparsers(
        dest="data_command", required=True, metavar="ACTION"
    )
    synth = data.add_parser("synth", help="render synthetic driving frames to disk")
    synth.add_argument("--out", type=Path, required=True, help="output folder")
    synth.add_argument("--count", type=int, required=True, help="number of frames")
    synth.add_argument("--split", default="train", choices=["train", "val", "test"])
    synth.add_argument("--width", type=int, default=640)
    synth.add_argument("--height", type=int, default=384)
    synth.add_argument("--workers", type=int, default=0, help="processes (0: one per core)")
    synth.set_defaults(run=_handler("perception.data.synthetic.export:synth_command"))
    show = data.add_parser("show", help="draw a sample's image, boxes, semantics and depth to a PNG")
    show.add_argument("--dataset", default="synthetic", help="synthetic, cityscapes, kitti, bdd100k or a synth folder")
    show.add_argument("--root", type=Path, help="data set root (real layouts and synth folders)")
    show.add_argument("--split", default="train")
    show.add_argument("--index", type=int, default=0)
    show.add_argument("--out", type=Path, default=Path("sample.png"))
    show.set_defaults(run=_handler("perception.data.show:show_command"))

    train = commands.add_parser("train", help=TRAIN_HELP)
    add_train_arguments(train)
    train.set_defaults(run=_handler("perception.train:train_command"))

    study = commands.add_parser("study", help="multi-task under each weighting method vs single-task networks")
    study.add_argument("config", type=Path, help="the base recipe (budget, data, model)")
    study.add_argument("--out", type=Path, default=Path("runs/study"))
    study.add_argument("--methods", default="fixed,uncertainty,dwa,gradnorm,pcgrad,famo")
    study.add_argument("--seeds", default="0,1")
    study.add_argument("--eval-count", type=int, default=300, help="held-out frames per run")
    study.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    study.add_argument("--no-latency", action="store_true", help="skip the multi- vs single-task latency run")
    study.add_argument("--latency-size", default="640x384", help="input WxH at which latency is measured")
    study.add_argument("--card", type=Path, help="a model card (card.md) to put the study's table in")
    study.set_defaults(run=_handler("perception.study:study_command"))

    evaluate = commands.add_parser("eval", help="evaluate a checkpoint or an exported model on held-out data")
    evaluate.add_argument("model", type=Path, help="checkpoint (.pt / .safetensors), model.onnx or models/<name>/")
    evaluate.add_argument("--dataset", default="synthetic", help=", ".join(DATASET_NAMES))
    evaluate.add_argument("--root", type=Path, help="data set root (default: the real data beside the repository)")
    evaluate.add_argument("--split", help="held-out split (default: synthetic test, camvid val, kitti/nuscenes train)")
    evaluate.add_argument("--count", type=int, default=500, help="held-out frames")
    evaluate.add_argument("--out", type=Path, help="write metrics JSON and Markdown here")
    evaluate.set_defaults(run=_handler("perception.evaluate.command:eval_command"))

    export = commands.add_parser("export", help="export a checkpoint to a self-contained ONNX model")
    export.add_argument("checkpoint", type=Path)
    export.add_argument("--out", type=Path, required=True, help="models/<name>/<version>/")
    export.add_argument("--frames", type=Path, help="folder of real JPEG/PNG frames to verify on (besides random ones)")
    export.add_argument("--metrics", type=Path, help="metrics JSON (from perception eval) to carry in the metadata")
    export.add_argument("--eval-count", type=int, default=200, help="held-out synthetic frames to score (0: skip)")
    export.add_argument("--real", default="", help="real data sets to score for the card, e.g. camvid,kitti,nuscenes")
    export.set_defaults(run=_handler("perception.export:export_command"))
    variants = commands.add_parser("export-variants", help="make FP16 and INT8 variants of a model, measure them")
    variants.add_argument("model_dir", type=Path, help="models/<name>/<version>/ holding model.onnx, or models/<name>/")
    variants.add_argument("--variants", default="fp16,int8", help="comma-separated: fp16, int8")
    variants.add_argument("--calibration-frames", type=int, default=64, help="synthetic val frames for INT8 ranges")
    variants.add_argument("--count", type=int, default=200, help="held-out test frames to score on (0: skip)")
    variants.set_defaults(run=_handler("perception.export.variants:variants_command"))

    serve = commands.add_parser("serve", help="run the HTTP service (settings from PERCEPTION_* variables)")
    serve.add_argument("--host", help="overrides PERCEPTION_HOST")
    serve.add_argument("--port", type=int, help="overrides PERCEPTION_PORT")
    serve.set_defaults(run=_handler("service.__main__:serve_command"))

    infer = commands.add_parser("infer", help="send frames to a running service; print, save and draw the answers")
    infer.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image files, folders of images, videos")
    infer.add_argument("--url", default="http://127.0.0.1:8000", help="the service's base URL")
    infer.add_argument("--api-key", help="Bearer key (default: $PERCEPTION_API_KEY)")
    infer.add_argument("--out", type=Path, help="write <frame>.json (and <frame>.overlay.png) here")
    infer.add_argument("--overlay", action="store_true", help="also draw boxes, segmentation and depth to PNG")
    infer.add_argument("--batch", type=int, default=1, help="frames per request (multipart when more than one)")
    infer.add_argument("--every", type=int, default=1, help="send every Nth video frame")
    infer.add_argument("--camera-id", help="camera id sent with every frame")
    infer.add_argument("--score-threshold", type=float, help="lowest detection score to return")
    infer.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    infer.set_defaults(run=_handler("perception.client:infer_command"))

    bench = commands.add_parser("bench", help="measure the model, the service and a PyTorch-eager server")
    add_bench_arguments(bench)
    bench.set_defaults(run=_handler("perception.bench.run:bench_command"))

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
