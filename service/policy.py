"""The batch policy for the execution provider in use: every setting left unset takes the provider's
default, and the defaults come from measurements where there are any.

CPU (``benchmarks/results/latest.md``, 2-core EPYC with VNNI, drivenet 13's INT8 file, 2 intra-op
threads): batching buys little throughput on a CPU (2 runs in flight: 92.5 frames/s at batch 1, 96.4 at
2, 88.0 at 4, 84.3 at 8; drivenet 11's INT8 on an earlier run: 72.3, 71.7, 69.7, 68.4), two runs in
flight gained there (72.3 against 60.1 for one at batch 1) and are level now (92.5 against 91.9), and
the service at max batch 2, 2 in flight and no queue delay answered a lone frame in 17.5 ms p50 and 77.5
frames/s at saturation. Max batch 2 rather than 1: taking a second waiting frame costs nothing (96.4
against 92.5) and a 4-camera request runs as two batches on both slots. No queue delay: a frame that
arrives idle starts at once anyway (service/batcher.py), and under load waiting for a partner buys no
throughput here.

GPU (CUDA, TensorRT, any other accelerator): no GPU measurement exists yet (docs/export.md, "Still to do
on a GPU"); these are the service's earlier defaults, a larger batch because a GPU's throughput grows
with it. Measure with ``perception bench`` on the GPU before relying on them.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.settings import Settings

CPU_PROVIDER = "CPUExecutionProvider"


@dataclass(frozen=True)
class BatchPolicy:
    max_batch: int
    max_queue_delay_ms: float
    concurrent_batches: int


CPU_DEFAULTS = BatchPolicy(max_batch=2, max_queue_delay_ms=0.0, concurrent_batches=2)
GPU_DEFAULTS = BatchPolicy(max_batch=8, max_queue_delay_ms=5.0, concurrent_batches=2)
SOURCES = {
    CPU_PROVIDER: "CPU defaults, measured: benchmarks/results/latest.md",
    "gpu": "GPU defaults, not yet measured on a GPU",
}


def provider_defaults(provider: str) -> tuple[BatchPolicy, str]:
    """The default policy for ``provider`` and where it comes from."""
    if provider == CPU_PROVIDER:
        return CPU_DEFAULTS, SOURCES[CPU_PROVIDER]
    return GPU_DEFAULTS, SOURCES["gpu"]


def batch_policy(provider: str, settings: Settings) -> tuple[BatchPolicy, str]:
    """The policy to serve with: each of PERCEPTION_MAX_BATCH, _MAX_QUEUE_DELAY_MS and
    _CONCURRENT_BATCHES as set, the provider's default where unset; and a description for the log."""
    defaults, source = provider_defaults(provider)
    chosen = {}
    explicit = []
    for name in ("max_batch", "max_queue_delay_ms", "concurrent_batches"):
        value = getattr(settings, name)
        if value is None:
            chosen[name] = getattr(defaults, name)
        else:
            chosen[name] = value
            explicit.append(f"PERCEPTION_{name.upper()}")
    policy = BatchPolicy(**chosen)
    when = "for every batch (PERCEPTION_WAIT_WHEN_IDLE)" if settings.wait_when_idle else "while other work is in flight"
    text = (f"max batch {policy.max_batch}, queue delay {policy.max_queue_delay_ms:g} ms {when}, "
            f"{policy.concurrent_batches} batches in flight; {source}"
            + (f"; set explicitly: {', '.join(explicit)}" if explicit else ""))  # fmt: skip
    return policy, text
