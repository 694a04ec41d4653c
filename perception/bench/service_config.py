"""The service configuration a benchmark run measures: the service's own defaults (what
``./scripts/serve.sh`` starts with nothing set), each overridden by a command-line flag when one is
given (``--max-batch`` ...). The defaults are the service's to decide: they are read through its own
settings and batch policy (``service.settings``, ``service.policy``), never restated here, and the
service process is given only the settings a flag set, so it runs exactly as it would unbenchmarked."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

from perception.runtime import usable_cores
from service.engine import choose_providers
from service.policy import batch_policy
from service.settings import Settings

# flag (argparse dest) → (Settings field, environment variable)
FLAGS = {
    "max_batch": ("max_batch", "PERCEPTION_MAX_BATCH"),
    "concurrent_batches": ("concurrent_batches", "PERCEPTION_CONCURRENT_BATCHES"),
    "max_queue_delay_ms": ("max_queue_delay_ms", "PERCEPTION_MAX_QUEUE_DELAY_MS"),
    "threads": ("intra_op_threads", "PERCEPTION_INTRA_OP_THREADS"),
}


@dataclass(frozen=True)
class ServiceConfig:
    """What the service will run with, resolved as the service resolves it."""

    max_batch: int
    concurrent_batches: int
    max_queue_delay_ms: float
    threads: int  # ONNX Runtime intra-op threads (resolved: never 0)
    provider: str  # the execution provider the policy was resolved for
    settings: Settings  # the service's settings as its process will read them
    given: dict[str, str] = field(default_factory=dict)  # environment variable → value, from flags
    sources: dict[str, str] = field(default_factory=dict)  # flag → "--flag", "$VARIABLE" or "service default"
    policy: str = ""  # the service's own description of its batch policy

    def env(self, threads: int | None = None) -> dict[str, str]:
        """The service's environment: the settings a flag set, and ``threads`` intra-op threads when
        given (the pinned run: one per pinned core); everything else is left to the service."""
        env = {**self.given, "PERCEPTION_LOG_LEVEL": "WARNING"}
        if threads:
            env["PERCEPTION_INTRA_OP_THREADS"] = str(threads)
        return env


def service_config(args: argparse.Namespace) -> ServiceConfig:
    """Each setting from its flag when given, else as the service process would resolve it: its
    settings (its defaults, or ``PERCEPTION_*`` variables already set here, which it inherits) and
    its batch policy for the provider it will run on."""
    given = {flag: value for flag in FLAGS if (value := getattr(args, flag, None)) is not None}
    settings = Settings(**{FLAGS[flag][0]: value for flag, value in given.items()})
    provider = choose_providers(settings.providers)[0]
    policy, described = batch_policy(provider, settings)
    sources = {
        flag: f"--{flag.replace('_', '-')}" if flag in given else
        f"${env}" if env in os.environ else "service default"
        for flag, (_, env) in FLAGS.items()
    }  # fmt: skip
    return ServiceConfig(
        max_batch=policy.max_batch,
        concurrent_batches=policy.concurrent_batches,
        max_queue_delay_ms=policy.max_queue_delay_ms,
        threads=settings.intra_op_threads or usable_cores(),  # the service's 0: one per usable core
        provider=provider,
        settings=settings,
        given={FLAGS[flag][1]: str(value) for flag, value in given.items()},
        sources=sources,
        policy=described,
    )
