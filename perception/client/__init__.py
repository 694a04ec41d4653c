"""A small Python client for the perception service, and the ``perception infer`` command.

Torch-free on purpose: it needs only NumPy, OpenCV and httpx, so it works in the serving install.

    client = PerceptionClient("http://127.0.0.1:8000")
    answer = client.perceive([Path("frame.jpg")])
    frame = answer["frames"][0]
    classes = decode_segmentation(frame["segmentation"])  # uint8 [H, W] class ids
    metres = decode_depth(frame["depth"])                 # float32 [H, W]
    picture = render_overlay(image_rgb, frame)            # what the model saw

The answer's fields are described once, in ``service/schemas.py``. One module per job: ``http``
(the client and its requests), ``answers`` (decoding segmentation and depth), ``overlay`` (drawing),
``inputs`` (image files, folders and video frames) and ``cli`` (``perception infer``).
"""

from perception.client.answers import decode_depth, decode_png, decode_segmentation, run_lengths
from perception.client.cli import infer_command, summary, unique_name
from perception.client.http import (
    DEFAULT_URL,
    PNG_SIGNATURE,
    QUERY_OPTIONS,
    Image,
    PerceptionClient,
    PerceptionError,
    encode_image,
    raise_for_problem,
)
from perception.client.inputs import IMAGE_SUFFIXES, Frame, batched, input_frames, video_frames
from perception.client.overlay import BOX_COLOURS, colour_depth, render_overlay, write_png

__all__ = [
    "BOX_COLOURS",
    "DEFAULT_URL",
    "IMAGE_SUFFIXES",
    "PNG_SIGNATURE",
    "QUERY_OPTIONS",
    "Frame",
    "Image",
    "PerceptionClient",
    "PerceptionError",
    "batched",
    "colour_depth",
    "decode_depth",
    "decode_png",
    "decode_segmentation",
    "encode_image",
    "infer_command",
    "input_frames",
    "raise_for_problem",
    "render_overlay",
    "run_lengths",
    "summary",
    "unique_name",
    "video_frames",
    "write_png",
]
