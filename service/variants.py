"""Which precision variant of a model version to serve, and why.

``perception export-variants`` writes ``<version>/fp16/model.onnx`` and ``<version>/int8/model.onnx``
beside the FP32 ``<version>/model.onnx``, and their accuracy change against FP32 on the held-out
test split to ``<version>/variants.json`` (``accuracy_change``: variant minus FP32, per metric).
Given a model folder, the service serves the variant that suits the execution provider in use
(INT8 on CPU, FP16 on CUDA/TensorRT, FP32 otherwise) when the folder holds it and its recorded change
is within the tolerance; otherwise FP32. A forced variant is served whatever its accuracy; a path to a
file is served as it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from perception.contract import MODEL_FILE, ModelError, resolve_model_path

VARIANTS = ("fp32", "fp16", "int8")
REPORT_FILE = "variants.json"  # written by perception export-variants into the version folder
CHANGE_KEY = "accuracy_change"

# The variant each provider runs fastest: INT8 with VNNI kernels on a CPU (2.35x FP32 in
# benchmarks/results/latest.md), FP16 on a GPU. Providers not named here serve FP32.
PREFERRED = {
    "CPUExecutionProvider": "int8",
    "CUDAExecutionProvider": "fp16",
    "TensorrtExecutionProvider": "fp16",
}
# Which way each metric gets worse: a drop for these, a rise for the others (errors).
HIGHER_IS_BETTER = {"mAP50": True, "mAP": True, "mIoU": True, "delta1": True, "AbsRel": False, "RMSE": False}


@dataclass(frozen=True)
class Tolerance:
    """The largest loss against FP32 a variant may have been measured with, per metric: a drop for
    mAP50, mAP, mIoU and delta1, a rise for AbsRel and RMSE. ``default`` covers metrics not named."""

    default: float
    per_metric: dict[str, float]

    @classmethod
    def parse(cls, text: str) -> Tolerance:
        """``"0.01"`` (every metric) or ``"0.01,AbsRel=0.005"`` / ``"mAP50=0.02,mIoU=0.01"`` (named
        metrics; the unnamed ones take the bare number, 0.01 without one). Raises ValueError."""
        default, per_metric = 0.01, {}
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            name, sep, value = part.rpartition("=")
            name = name.strip()
            if sep and name not in HIGHER_IS_BETTER:
                raise ValueError(f"unknown metric {name!r} (known: {', '.join(HIGHER_IS_BETTER)})")
            limit = float(value)
            if limit < 0:
                raise ValueError(f"a tolerance is a loss and cannot be negative: {part!r}")
            if sep:
                per_metric[name] = limit
            else:
                default = limit
        return cls(default, per_metric)

    def limit(self, metric: str) -> float:
        return self.per_metric.get(metric, self.default)

    def breach(self, change: dict[str, float]) -> str | None:
        """The first metric whose recorded change is a loss beyond its limit, in words; None if none."""
        for metric, delta in change.items():
            if metric not in HIGHER_IS_BETTER:
                continue  # a metric without a known direction cannot be judged
            loss = -delta if HIGHER_IS_BETTER[metric] else delta
            if loss > self.limit(metric):
                word = "drop" if HIGHER_IS_BETTER[metric] else "rise"
                return f"{metric} {word} {abs(delta):.4g} > {self.limit(metric):g}"
        return None


@dataclass(frozen=True)
class Choice:
    """The file to serve, the variant it is (None: an explicit file, whose metadata says) and why."""

    path: Path
    variant: str | None
    reason: str


def variant_file(version_dir: Path, variant: str) -> Path:
    return version_dir / MODEL_FILE if variant == "fp32" else version_dir / variant / MODEL_FILE


def recorded_change(version_dir: Path, variant: str) -> dict[str, float] | None:
    """The variant's recorded accuracy change against FP32, or None when nothing is recorded."""
    report = version_dir / REPORT_FILE
    try:
        change = json.loads(report.read_text()).get(CHANGE_KEY, {}).get(variant)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelError(f"{report}: cannot be read: {exc}") from exc
    if change is None:
        return None
    if not isinstance(change, dict) or not all(isinstance(v, int | float) for v in change.values()):
        raise ModelError(f"{report}: {CHANGE_KEY}.{variant} is not a table of numbers")
    return change


def short(provider: str) -> str:
    """``CPUExecutionProvider`` → ``CPU``."""
    return provider.removesuffix("ExecutionProvider")


def choose(named: Path, provider: str, setting: str, tolerance: Tolerance) -> Choice:
    """What to serve for ``named`` (a model.onnx, a version folder, a variant folder or a models/<name>/
    folder) on ``provider``, with ``setting`` auto or a variant name. Raises ModelError when there is
    nothing to serve or the forced variant is missing."""
    named = Path(named)
    note = f" (PERCEPTION_VARIANT={setting} applies to version folders)" if setting != "auto" else ""
    if named.is_file():
        return Choice(named, None, f"the file named{note}")
    if named.name in VARIANTS and (named / MODEL_FILE).is_file():
        return Choice(named / MODEL_FILE, named.name, f"the {named.name} folder named{note}")
    version_dir = resolve_model_path(named).parent
    if setting != "auto":
        path = variant_file(version_dir, setting)
        if not path.is_file():
            raise ModelError(f"PERCEPTION_VARIANT={setting}, but {version_dir} has no {setting} variant")
        return Choice(path, setting, f"forced by PERCEPTION_VARIANT={setting}")
    fp32 = variant_file(version_dir, "fp32")
    preferred = PREFERRED.get(provider, "fp32")
    if preferred == "fp32":
        return Choice(fp32, "fp32", f"no reduced-precision variant suits the {short(provider)} provider")
    if not variant_file(version_dir, preferred).is_file():
        return Choice(fp32, "fp32", f"no {preferred} variant in {version_dir}")
    change = recorded_change(version_dir, preferred)
    if change is None:
        return Choice(fp32, "fp32", f"{preferred} has no recorded accuracy ({version_dir / REPORT_FILE})")
    if breach := tolerance.breach(change):
        return Choice(fp32, "fp32", f"{preferred} {breach}")
    deltas = ", ".join(f"{metric} {delta:+.4f}" for metric, delta in change.items())
    return Choice(variant_file(version_dir, preferred), preferred,
                  f"{short(provider)} provider, deltas within tolerance ({deltas})")  # fmt: skip
