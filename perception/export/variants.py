"""Precision variants of an exported model: FP16 for GPUs and INT8 (static, QDQ) for CPUs.

Each variant lives in a sub-folder of the FP32 model's version folder, ``models/<name>/<v>/fp16/``
and ``models/<name>/<v>/int8/`` (``model.onnx`` + ``model.onnx.sha256``). ``resolve_model_path``
(``perception.contract``, what the service picks versions with) takes only integer folder names as
versions, so a variant is never served as a newer version; serve one by pointing ``PERCEPTION_MODEL``
at its folder.

Only the network is reduced in precision. The input normalisation, everything after the last
convolutions (box decoding, sigmoid, upsampling + argmax, exp and depth scaling) and the NMS subgraph
(``nms/`` nodes) stay in FP32, and the inputs and outputs keep their contract types. The metadata is
copied and gains one key, ``variant`` (fp32 when absent).

``compare_variants`` scores every variant on the held-out split, times FP32, FP16 and INT8 side by
side in one process, and writes ``variants.json`` and a section of ``card.md``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from perception import timing
from perception.card import write_section
from perception.contract import INPUT_FOCAL, INPUT_IMAGES, MODEL_FILE, ModelMetadata, resolve_model_path, write_checksum
from perception.evaluate import evaluate, held_out_samples, run_onnx
from perception.machine import hardware
from perception.runtime import cpu_session

VARIANT_KEY = "variant"  # metadata_props key: fp32 (absent), fp16 or int8
VARIANTS = ("fp16", "int8")
NMS_PREFIX = "nms/"
THREADS = 2  # intra-op threads for every session made here (this machine has 2 cores)
IN_FLIGHT = 2  # runs in flight for the second throughput figure: the service's default (PERCEPTION_CONCURRENT_BATCHES)


# --- which nodes keep full precision -------------------------------------------------------------


def full_precision_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes outside the convolutional network: the ``nms/`` subgraph, the nodes between
    the inputs and the first convolutions (uint8 → float, mean/std), and the nodes between the last
    convolutions and the outputs (decoding, sigmoid, resize, argmax, exp, depth scaling)."""
    nodes = list(model.graph.node)
    producer = {out: n for n in nodes for out in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in nodes:
        for name in n.input:
            consumers.setdefault(name, []).append(n)

    keep = {n.name for n in nodes if n.name.startswith(NMS_PREFIX)}
    # Backwards from the outputs and forwards from the inputs, stopping at convolutions.
    for stack, step in (
        ([producer[o.name] for o in model.graph.output if o.name in producer],
         lambda n: [producer[i] for i in n.input if i in producer]),
        ([c for i in model.graph.input for c in consumers.get(i.name, [])],
         lambda n: [c for o in n.output for c in consumers.get(o, [])]),
    ):  # fmt: skip
        seen: set[str] = set()
        while stack:
            node = stack.pop()
            if node.op_type == "Conv" or node.name in seen:
                continue
            seen.add(node.name)
            keep.add(node.name)
            stack.extend(step(node))
    return sorted(keep)


def _finish(model: onnx.ModelProto, source: onnx.ModelProto, variant: str, dst: Path) -> Path:
    """Copy the metadata, mark the variant, save with its checksum, check it loads; the model path."""
    props = {p.key: p.value for p in source.metadata_props}
    ModelMetadata.from_props(props)  # the source must carry valid metadata
    props[VARIANT_KEY] = variant
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    model.producer_name = source.producer_name
    model.doc_string = f"{source.doc_string} ({variant})"
    dst.mkdir(parents=True, exist_ok=True)
    path = dst / MODEL_FILE
    onnx.save_model(model, path)
    write_checksum(path)
    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # loads, or raises
    return path


def _load(path: Path) -> onnx.ModelProto:
    """The model at ``path`` (a model.onnx or its folder), with its opset imports de-duplicated (merging
    the NMS subgraph leaves two entries for the default domain, which the quantizer rejects)."""
    model = onnx.load(_model_file(path))
    opsets = {o.domain: o.version for o in model.opset_import}
    del model.opset_import[:]
    model.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in opsets.items())
    return model


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def _model_file(path: Path) -> Path:
    return path if path.suffix == ".onnx" else path / MODEL_FILE


# --- FP16 ----------------------------------------------------------------------------------------

# Inputs that the ONNX standard types as float32 whatever the data type (Resize's scales).
FLOAT32_INPUTS = {"Resize": (2,)}


def make_fp16(src: Path, dst: Path) -> Path:
    """``src`` (a model.onnx or its folder) with the network in float16 → ``dst``/model.onnx.

    The nodes of ``full_precision_nodes`` stay float32; one Cast is put on each edge between the two
    parts. (onnxconverter-common's and onnxruntime's converters round every tensor between two
    blocked nodes through float16, boxes and scores into NMS included, so they are not used.)"""
    source = _load(src)
    model = onnx.shape_inference.infer_shapes(_copy(source))
    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.value_info, *graph.output]}
    types.update({t.name: t.data_type for t in graph.initializer})
    keep = set(full_precision_nodes(model))
    half = [n for n in graph.node if n.name not in keep and n.op_type != "Constant"]
    half_outputs = {o for n in half for o in n.output if types.get(o) == onnx.TensorProto.FLOAT}
    half_ids = {id(n) for n in half}
    _halve_initializers(graph, half_ids, half_outputs)
    _cast_between_precisions(graph, half_ids, types, half_outputs)
    _keep_output_types(graph, half_outputs)
    for value in graph.value_info:
        if value.name in half_outputs:
            value.type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    _toposort(graph)
    onnx.checker.check_model(model)
    return _finish(model, source, "fp16", dst)


def _halve_initializers(graph: onnx.GraphProto, half_ids: set[int], half_outputs: set[str]) -> None:
    """Float32 initializers read only by float16 nodes become float16 (and join ``half_outputs``)."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    for init in graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and all(id(r) in half_ids for r in readers.get(init.name, [])):
            init.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(init).astype(np.float16), init.name))
            half_outputs.add(init.name)


def _cast_between_precisions(graph: onnx.GraphProto, half_ids: set[int], types: dict[str, int],
                             half_outputs: set[str]) -> None:  # fmt: skip
    """One Cast on each edge between a float32 and a float16 node (shared by every reader of a tensor)."""
    casts: dict[tuple[str, int], str] = {}

    def cast(name: str, to: int) -> str:
        if (name, to) not in casts:
            casts[name, to] = f"{name}/to_{'fp16' if to == onnx.TensorProto.FLOAT16 else 'fp32'}"
            graph.node.append(onnx.helper.make_node("Cast", [name], [casts[name, to]], casts[name, to], to=to))
        return casts[name, to]

    for node in list(graph.node):
        is_half = id(node) in half_ids
        for k, name in enumerate(node.input):
            fp32_only = k in FLOAT32_INPUTS.get(node.op_type, ())
            if is_half and not fp32_only and types.get(name) == onnx.TensorProto.FLOAT and name not in half_outputs:
                node.input[k] = cast(name, onnx.TensorProto.FLOAT16)
            elif (not is_half or fp32_only) and name in half_outputs:
                node.input[k] = cast(name, onnx.TensorProto.FLOAT)


def _keep_output_types(graph: onnx.GraphProto, half_outputs: set[str]) -> None:
    """Graph outputs keep their types: a float16 output is renamed inside and cast back under its name."""
    for output in graph.output:
        if output.name in half_outputs:
            producer = next(n for n in graph.node if output.name in n.output)
            internal = f"{output.name}/fp16"
            producer.output[list(producer.output).index(output.name)] = internal
            for n in graph.node:
                n.input[:] = [internal if i == output.name else i for i in n.input]
            graph.node.append(onnx.helper.make_node("Cast", [internal], [output.name], f"{output.name}/cast", to=1))


def _toposort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` so that every node follows the producers of its inputs."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for node in pending:
            if all(i in ready for i in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ValueError(f"graph has a cycle or a missing input near {rest[0].name}")
        pending = rest
    nodes = [onnx.NodeProto() for _ in ordered]
    for copy, node in zip(nodes, ordered, strict=True):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(nodes)


# --- INT8 ----------------------------------------------------------------------------------------


def calibration_images(height: int, width: int, count: int, split: str = "val") -> Iterator[np.ndarray]:
    """Letterboxed synthetic frames of ``split`` (never the held-out test split), uint8 [3, H, W]."""
    for sample in held_out_samples("synthetic", None, split, count, height, width):
        yield sample.image.transpose(2, 0, 1)


class _Calibration:
    """An ``onnxruntime.quantization.CalibrationDataReader``: one frame per call, at the canonical focal."""

    def __init__(self, frames: Iterator[np.ndarray], focal_px: float):
        self.frames, self.focal_px = frames, focal_px

    def get_next(self) -> dict[str, np.ndarray] | None:
        frame = next(self.frames, None)
        if frame is None:
            return None
        return {INPUT_IMAGES: frame[None].copy(), INPUT_FOCAL: np.array([self.focal_px], np.float32)}

    def rewind(self) -> None:  # called by some calibrators; one pass is all we use
        pass


def make_int8(src: Path, dst: Path, calibration_frames: int = 64) -> Path:
    """``src`` with static INT8 quantization (QDQ, per-channel weights, MinMax ranges from
    ``calibration_frames`` synthetic validation frames) → ``dst``/model.onnx."""
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    source = _load(src)
    meta = ModelMetadata.from_props({p.key: p.value for p in source.metadata_props})
    frames = calibration_images(meta.input_height, meta.input_width, calibration_frames)
    reader = _Calibration(frames, meta.canonical_focal_px)
    CalibrationDataReader.register(_Calibration)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / MODEL_FILE
        quantize_static(
            _copy(source),  # quantize_static moves the weights of the model it is given to a temporary file
            out,
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=full_precision_nodes(source),
        )
        model = onnx.load(out)
    return _finish(model, source, "int8", dst)


def make_variants(model_dir: Path, variants: tuple[str, ...] = VARIANTS, calibration: int = 64) -> dict[str, Path]:
    """The variants of ``model_dir``/model.onnx, each in ``model_dir``/<variant>/; their paths."""
    paths = {}
    for variant in variants:
        if variant == "fp16":
            paths[variant] = make_fp16(model_dir, model_dir / "fp16")
        elif variant == "int8":
            paths[variant] = make_int8(model_dir, model_dir / "int8", calibration)
        else:
            raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    return paths


# --- measuring -----------------------------------------------------------------------------------


def session(path: Path, threads: int = THREADS) -> ort.InferenceSession:
    """A CPU session with the service's options (``perception.runtime``), the same for every variant."""
    return cpu_session(_model_file(path), threads)


def variant_paths(model_dir: Path) -> dict[str, Path]:
    """fp32 and whichever variants exist in ``model_dir``."""
    paths = {"fp32": model_dir / MODEL_FILE}
    paths.update({v: model_dir / v / MODEL_FILE for v in VARIANTS if (model_dir / v / MODEL_FILE).is_file()})
    return paths


def headline(metrics: dict) -> dict[str, float]:
    """mAP@.5, mIoU and AbsRel from an evaluation summary (those present)."""
    out = {}
    if "detection" in metrics:
        out["mAP50"] = metrics["detection"]["mAP50"]
    if "segmentation" in metrics:
        out["mIoU"] = metrics["segmentation"]["mIoU"]
    if "depth" in metrics:
        out["AbsRel"] = metrics["depth"]["AbsRel"]
    return out


def compare_variants(
    model_dir: Path, count: int = 200, batch_sizes: tuple[int, ...] = (1, 4), repeats: int = 5, write: bool = True
) -> dict:
    """Accuracy of every variant on ``count`` held-out synthetic test frames and its change against
    FP32, and throughput ratios against FP32 measured in one run; written to ``variants.json`` and
    ``card.md`` in ``model_dir`` unless ``write`` is false. Returns the report."""
    paths = variant_paths(model_dir)
    meta = ModelMetadata.from_props(session(paths["fp32"]).get_modelmeta().custom_metadata_map)
    samples = list(held_out_samples("synthetic", None, "test", count, meta.input_height, meta.input_width))
    accuracy = {}
    for name, path in paths.items():
        sess = session(path)
        accuracy[name] = headline(evaluate(lambda images, focal, s=sess: run_onnx(s, images, focal), samples))
    frames = np.stack([s.image.transpose(2, 0, 1) for s in samples[:8]])
    speed = timing.throughput_and_in_flight(paths, frames, meta.canonical_focal_px, batch_sizes, IN_FLIGHT, repeats,
                                            0.3, THREADS)  # fmt: skip

    report = {
        "model": f"{meta.name} {meta.version}",
        "input": [meta.input_height, meta.input_width],
        "data": {"dataset": "synthetic", "split": "test", "frames": len(samples)},
        "machine": hardware(),
        "onnxruntime": f"{ort.__version__} CPUExecutionProvider, intra-op threads {THREADS}",
        "accuracy": accuracy,
        "accuracy_change": {
            name: {k: round(v - accuracy["fp32"][k], 4) for k, v in acc.items()} for name, acc in accuracy.items()
        },
        "throughput": speed,
        "speedup": {
            batch: {name: round(row[name]["frames_per_s"] / row["fp32"]["frames_per_s"], 3) for name in row}
            for batch, row in speed.items()
        },
        "speedup_in_flight": {
            batch: {n: round(row[n]["frames_per_s_in_flight"] / row["fp32"]["frames_per_s_in_flight"], 3) for n in row}
            for batch, row in speed.items()
        },
        "sizes_mb": {name: round(path.stat().st_size / 1e6, 2) for name, path in paths.items()},
    }
    if write:
        (model_dir / "variants.json").write_text(json.dumps(report, indent=2) + "\n")
        write_section(model_dir / "card.md", "variants", card_section(report))
    return report


def card_section(report: dict) -> str:
    names = list(report["accuracy"])
    metrics = list(report["accuracy"]["fp32"])
    batches = list(report["throughput"])
    lines = [
        "## Precision variants",
        "",
        f"Measured by `perception export-variants` on {report['machine']}, {report['onnxruntime']}; "
        f"accuracy on {report['data']['frames']} held-out synthetic test frames at "
        f"{report['input'][1]}×{report['input'][0]}. Speed-ups are ratios measured in one run "
        f"(medians over interleaved repeats), one run at a time and with {IN_FLIGHT} in flight as the service "
        "keeps them. FP16 is meant for GPUs: on this CPU ONNX Runtime runs it through casts, so its CPU "
        "speed says nothing about a GPU.",
        "",
        "| variant | "
        + " | ".join(metrics)
        + " | "
        + " | ".join(f"frames/s @ batch {b} | {IN_FLIGHT} in flight" for b in batches)
        + " | size MB |",
        "| --- " * (2 + len(metrics) + 2 * len(batches)) + "|",
    ]
    for name in names:
        acc = report["accuracy"][name]
        change = report["accuracy_change"][name]
        cells = [f"{acc[m]:.4f}" + (f" ({change[m]:+.4f})" if name != "fp32" else "") for m in metrics]
        speeds = [
            f"{report['throughput'][b][name][key]:.1f}"
            + (f" ({report[ratio][b][name]:.2f}×)" if name != "fp32" else "")
            for b in batches
            for key, ratio in (("frames_per_s", "speedup"), ("frames_per_s_in_flight", "speedup_in_flight"))
        ]
        lines.append(
            f"| {name} | " + " | ".join(cells) + " | " + " | ".join(speeds) + f" | {report['sizes_mb'][name]} |"
        )
    return "\n".join(lines)


def variants_command(args: argparse.Namespace) -> int:
    """``perception export-variants MODEL_DIR``: make the variants, then measure them."""
    wanted = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    model_dir = resolve_model_path(args.model_dir).parent  # models/<name>/: its newest version
    for variant, path in make_variants(model_dir, wanted, args.calibration_frames).items():
        print(f"wrote {path} ({variant})")
    if args.count > 0:
        report = compare_variants(model_dir, args.count)
        print(card_section(report))
        print(f"wrote {model_dir / 'variants.json'} and {model_dir / 'card.md'}")
    return 0
