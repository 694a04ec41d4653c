"""``perception infer``: post frames to a running service, print a line per frame, save answers and overlays."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

import httpx

from perception.client.http import PerceptionClient, PerceptionError
from perception.client.inputs import Frame, batched, input_frames
from perception.client.overlay import render_overlay, write_png


def summary(name: str, frame: dict) -> str:
    """One line: detections per class and the timings."""
    counts = Counter(d["class_name"] for d in frame.get("detections") or [])
    found = ", ".join(f"{n} {c}" for c, n in counts.most_common()) or "no detections"
    t = frame["timings"]
    times = ", ".join(
        f"{k.removesuffix('_ms')} {t[k]:.1f}" for k in ("decode_ms", "queue_ms", "inference_ms", "encode_ms")
    )
    return f"{name}: {found} | total {t['total_ms']:.1f} ms ({times}; batch {frame['batch_size']})"


def unique_name(name: str, used: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3`` ... if it is taken; records the one returned in ``used``."""
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{name}-{n}"
    used.add(candidate)
    return candidate


def infer_command(args: argparse.Namespace) -> int:
    """``perception infer``: post frames, print a line per frame, save answers and overlays."""
    if args.batch < 1 or args.every < 1:
        print("error: --batch and --every must be at least 1", file=sys.stderr)
        return 2
    out: Path | None = args.out
    if args.overlay and out is None:
        print("error: --overlay needs --out DIR", file=sys.stderr)
        return 2
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    api_key = args.api_key or os.environ.get("PERCEPTION_API_KEY") or None
    try:
        with PerceptionClient(args.url, api_key, timeout=args.timeout) as client:
            count = send_all(client, args, out)
    except PerceptionError as exc:
        print(f"error: the service answered {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"error: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if count == 0:
        print("error: no frames to send", file=sys.stderr)
        return 1
    return 0


def send_all(client: PerceptionClient, args: argparse.Namespace, out: Path | None) -> int:
    """Post the frames of ``args.inputs`` ``args.batch`` at a time; print each answer and, with ``out``,
    save it. Returns how many frames were answered."""
    used: set[str] = set()
    count = 0
    for batch in batched(input_frames(args.inputs, args.every, args.camera_id), args.batch):
        metadata = [{k: v for k, v in f.meta.items() if v is not None} for f in batch]
        answer = client.perceive(
            [f.data for f in batch], metadata=metadata if any(metadata) else None,
            score_threshold=args.score_threshold,
        )  # fmt: skip
        for source, result in zip(batch, answer["frames"], strict=True):
            name = unique_name(source.name, used)
            print(summary(name, result), flush=True)
            count += 1
            if out is not None:
                save_answer(out, name, answer, result, source, args.overlay)
    return count


def save_answer(out: Path, name: str, answer: dict, result: dict, source: Frame, overlay: bool) -> None:
    """``<name>.json``: the frame's ``result`` with the request's id and model; with ``overlay`` also
    ``<name>.overlay.png``."""
    doc = {"source": name, "request_id": answer["request_id"], "model": answer["model"], **result}
    (out / f"{name}.json").write_text(json.dumps(doc))
    if overlay:
        write_png(out / f"{name}.overlay.png", render_overlay(source.rgb(), result))
