"""How small the held-out boxes are: the share of ground-truth boxes under each height, and by
COCO's area buckets, on the frames `perception eval` scores (the synthetic test split at the
bundled input size). Explains the detection floor's distance: most boxes are a few pixels tall.

    python benchmarks/box_sizes.py [--count 500] [--size 640x384]
"""

from __future__ import annotations

import argparse

import numpy as np

from perception.evaluate import held_out_samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--size", default="640x384", help="input WxH")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    samples = list(held_out_samples("synthetic", None, "test", args.count, height, width))
    boxes = np.concatenate([s.boxes for s in samples if s.boxes is not None and len(s.boxes)])
    heights = boxes[:, 3] - boxes[:, 1]
    areas = heights * (boxes[:, 2] - boxes[:, 0])
    per_frame = len(boxes) / len(samples)
    print(f"{len(boxes)} boxes in {len(samples)} test frames at {width}x{height} ({per_frame:.1f} a frame)")
    print("| box height | share |\n| --- | --- |")
    for limit in (8, 12, 16, 25, 32):  # 25: KITTI's smallest scored box height (375-px-tall images)
        print(f"| < {limit} px | {np.mean(heights < limit):.1%} |")
    print(f"\nCOCO area buckets: small (< 32²) {np.mean(areas < 32**2):.1%}, "
          f"medium {np.mean((areas >= 32**2) & (areas < 96**2)):.1%}, large {np.mean(areas >= 96**2):.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
