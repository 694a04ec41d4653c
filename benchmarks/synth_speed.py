"""Frames per second per core of the synthetic world (scene sampling + rendering + JPEG).

Run: ``python benchmarks/synth_speed.py [--frames 200] [--width 640 --height 384]``. One process,
OpenCV limited to one thread, CPU time (not wall time) so that other work on a shared machine
counts as little as possible; the best of ``--rounds`` rounds is reported.
"""

from __future__ import annotations

import argparse
import time

import cv2

from perception.data.synthetic import SyntheticDataset
from perception.data.synthetic.dataset import decode_jpeg, encode_jpeg
from perception.data.synthetic.renderer import render


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=384)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    ds = SyntheticDataset("train", args.frames, args.height, args.width)
    ds[0]  # build the cached textures outside the timing

    best = {"sample": float("inf"), "render": float("inf"), "jpeg": float("inf"), "total": float("inf")}
    for _ in range(args.rounds):
        t0 = time.process_time()
        scenes = [ds.scene(i) for i in range(args.frames)]
        t1 = time.process_time()
        frames = [render(s) for s in scenes]
        t2 = time.process_time()
        for f in frames:
            decode_jpeg(encode_jpeg(f.image, f.jpeg_quality))
        t3 = time.process_time()
        for key, dt in (("sample", t1 - t0), ("render", t2 - t1), ("jpeg", t3 - t2), ("total", t3 - t0)):
            best[key] = min(best[key], dt / args.frames)
    t0, t1 = time.perf_counter(), time.process_time()
    for i in range(min(args.frames, 50)):
        ds[i]
    wall = (time.perf_counter() - t0) / min(args.frames, 50)
    cpu = (time.process_time() - t1) / min(args.frames, 50)

    boxes = sum(len(f.boxes) for f in frames) / len(frames)
    sunny = sum(s.lighting.shadows for s in scenes) / len(scenes)
    bonnet = sum(s.bonnet is not None for s in scenes) / len(scenes)
    night = sum(s.night is not None for s in scenes) / len(scenes)
    print(f"synthetic world at {args.width}x{args.height}, {args.frames} frames, {boxes:.1f} boxes/frame")
    print(f"  {sunny:.0%} of the frames with sun shadows, {bonnet:.0%} with the bonnet, {night:.0%} at night")
    print("  per frame (best round, CPU time): " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in best.items()))
    print(f"  SyntheticDataset.__getitem__: {cpu * 1e3:.2f} ms CPU, {wall * 1e3:.2f} ms wall")
    print(f"frames/s per core: {1.0 / best['total']:.1f}")


if __name__ == "__main__":
    main()
