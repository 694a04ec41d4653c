"""The loaded model: an ONNX Runtime session and what the file says about itself.

All model knowledge (classes, input size, palette, depth unit) comes from the file's metadata.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from perception.contract import (
    INPUT_FOCAL,
    INPUT_IMAGES,
    OUTPUT_NAMES,
    ModelError,
    ModelMetadata,
    recorded_checksum,
    resolve_model_path,
    sha256,
)
from perception.runtime import session_options

log = logging.getLogger("service.engine")

PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
VARIANT_KEY = "variant"  # metadata key perception export-variants adds (fp16, int8; absent: fp32)
PROVIDER_ALIASES = {"tensorrt": PROVIDER_ORDER[0], "cuda": PROVIDER_ORDER[1], "cpu": PROVIDER_ORDER[2]}


def choose_providers(setting: str) -> list[str]:
    available = ort.get_available_providers()
    if setting.strip().lower() == "auto":
        # A GPU build lists GPU providers even on machines without a GPU; skip them there.
        wanted = list(PROVIDER_ORDER) if Path("/dev/nvidiactl").exists() else [PROVIDER_ORDER[-1]]
    else:
        wanted = [PROVIDER_ALIASES.get(p.strip().lower(), p.strip()) for p in setting.split(",") if p.strip()]
    chosen = [p for p in wanted if p in available]
    if not chosen:
        raise ModelError(f"none of the providers {wanted} is available (available: {available})")
    return chosen


@dataclass
class Outputs:
    """One run's outputs, by contract name."""

    arrays: dict[str, np.ndarray]

    def frame(self, i: int) -> dict[str, np.ndarray]:
        return {name: value[i] for name, value in self.arrays.items()}


class Engine:
    """One model version, ready to run. ``runs`` counts ``InferenceSession.run`` calls."""

    def __init__(self, path: Path, providers: str = "auto", intra_op_threads: int = 0):
        self.path = resolve_model_path(Path(path))
        self.checksum = self._check_checksum()
        try:
            self.session = self._session(session_options(intra_op_threads), choose_providers(providers))
        except Exception as exc:  # onnxruntime raises several unrelated types for a bad file
            raise ModelError(f"{self.path}: cannot be loaded: {exc}") from exc
        self.provider = self.session.get_providers()[0]
        # On a GPU, bind inputs and outputs so ONNX Runtime copies each once, with no staging.
        self.io_binding = self.provider != PROVIDER_ORDER[-1]
        props = self.session.get_modelmeta().custom_metadata_map
        try:
            self.metadata = ModelMetadata.from_props(props)
        except ValueError as exc:
            raise ModelError(f"{self.path}: {exc}") from exc
        self.variant = props.get(VARIANT_KEY, "fp32")  # what the file says it is (export-variants marks it)
        self.selection = ""  # why this file is served (set by the roll-out that chose it)
        self._check_signature()
        self.runs = 0
        self._lock = threading.Lock()

    def _session(self, options: ort.SessionOptions, providers: list[str]) -> ort.InferenceSession:
        cache = self.path.parent / ".trt-cache"  # TensorRT engines are built once per model and GPU
        provider_options = {
            PROVIDER_ORDER[0]: {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache),
                                "trt_timing_cache_enable": "True"},
        }  # fmt: skip
        chosen = [(p, provider_options[p]) if p in provider_options else p for p in providers]
        return ort.InferenceSession(str(self.path), sess_options=options, providers=chosen)

    def _check_checksum(self) -> str:
        """The file's SHA-256; must match ``model.onnx.sha256`` beside it when that exists."""
        actual = sha256(self.path)
        expected = recorded_checksum(self.path)
        if expected is not None and expected != actual:
            raise ModelError(f"{self.path}: checksum {actual[:12]}… does not match the recorded {expected[:12]}…")
        return actual

    def _check_signature(self) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        if set(inputs) != {INPUT_IMAGES, INPUT_FOCAL}:
            raise ModelError(f"{self.path}: inputs are {sorted(inputs)}, expected {[INPUT_IMAGES, INPUT_FOCAL]}")
        if missing := set(OUTPUT_NAMES) - outputs:
            raise ModelError(f"{self.path}: outputs lack {sorted(missing)}")
        shape = inputs[INPUT_IMAGES].shape
        md = self.metadata
        if inputs[INPUT_IMAGES].type != "tensor(uint8)" or list(shape[1:]) != [3, md.input_height, md.input_width]:
            raise ModelError(f"{self.path}: images input is {inputs[INPUT_IMAGES].type} {shape}, metadata says "
                             f"[B, 3, {md.input_height}, {md.input_width}] uint8")  # fmt: skip

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def version(self) -> str:
        return self.metadata.version

    def run(self, images: np.ndarray, focal_px: np.ndarray) -> Outputs:
        """One inference run for a batch: uint8 [B, 3, H, W] and float32 [B]."""
        with self._lock:
            self.runs += 1
        if self.io_binding:
            binding = self.session.io_binding()
            binding.bind_cpu_input(INPUT_IMAGES, images)
            binding.bind_cpu_input(INPUT_FOCAL, focal_px)
            for name in OUTPUT_NAMES:
                binding.bind_output(name, "cpu")
            self.session.run_with_iobinding(binding)
            arrays = binding.copy_outputs_to_cpu()
        else:
            arrays = self.session.run(list(OUTPUT_NAMES), {INPUT_IMAGES: images, INPUT_FOCAL: focal_px})
        return Outputs(dict(zip(OUTPUT_NAMES, arrays, strict=True)))

    def self_test(self) -> float:
        """Run one grey frame; raises ModelError if the outputs have the wrong shapes. Returns seconds."""
        md = self.metadata
        images = np.full((1, 3, md.input_height, md.input_width), 114, np.uint8)
        started = time.perf_counter()
        try:
            out = self.run(images, np.array([md.default_focal_px], np.float32)).arrays
        except Exception as exc:
            raise ModelError(f"{self.path}: test inference failed: {exc}") from exc
        elapsed = time.perf_counter() - started
        expected = {
            "detections": (1, None, 6),
            "num_detections": (1,),
            "semantic": (1, md.input_height, md.input_width),
            "depth": (1, md.input_height, md.input_width),
        }
        for name, want in expected.items():
            got = out[name].shape
            if len(got) != len(want) or any(w is not None and w != g for w, g in zip(want, got, strict=True)):
                raise ModelError(f"{self.path}: output {name} has shape {got}, expected {want}")
        return elapsed
