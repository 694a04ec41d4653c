"""Prometheus metrics (prometheus-client), one registry per application instance."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "perception_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.stage_seconds = Histogram(
            "perception_stage_seconds", "Seconds per frame spent in each stage", ["stage"], buckets=LATENCY_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "perception_batch_size", "Frames per inference run", buckets=BATCH_BUCKETS, registry=r
        )
        self.queue_depth = Gauge("perception_queue_depth", "Frames waiting for or in inference", registry=r)
        self.frames = Counter("perception_frames", "Frames answered with results", registry=r)
        self.rejected = Counter("perception_frames_rejected", "Frames not run, by reason", ["reason"], registry=r)
        self.inference_runs = Counter("perception_inference_runs", "InferenceSession.run calls", registry=r)
        self.inference_failures = Counter("perception_inference_failures", "Inference runs that raised", registry=r)
        self.model_info = Gauge(
            "perception_model_info",
            "The model being served (value 1): its precision variant, its file and why that file",
            ["name", "version", "variant", "path", "reason"],  # each sorts after name: it stays the first label
            registry=r,
        )
        self.rollouts = Counter(
            "perception_model_rollouts", "Model roll-out attempts by result", ["result"], registry=r
        )
        for reason in ("queue_full", "deadline"):
            self.rejected.labels(reason)

    def serving(self, name: str, version: str, variant: str, path: str, reason: str) -> None:
        self.model_info.clear()
        self.model_info.labels(name, version, variant, path, reason).set(1)
