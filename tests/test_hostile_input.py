"""Hostile and unusual input: every bad request gets its documented 4xx problem, unusual but valid
images are answered correctly, nothing crashes and memory does not balloon.

Crafted files (decompression bombs, truncated and foreign formats) go to the app in-process and to
the decoder directly; property-based tests (hypothesis) fuzz the decoder and every input of
/v1/perceive; bombs and huge headers also go to a real server whose peak RSS is read from /proc.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import struct
import zlib

import cv2
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perception.client import decode_depth
from service.app import create_app
from service.imaging import ImageError, ImageTooLarge, declared_size, decode_image
from service.settings import Settings
from tests.conftest import BUNDLED_MODEL, RunningServer
from tests.servers import proc_status

MAX_BODY = 4 * 1024 * 1024
MAX_PIXELS = 40_000_000
PROBLEM_STATUSES = {400, 413, 415, 422}
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int, rows: int = 64) -> bytes:
    """A valid PNG header declaring width x height RGB pixels, with a tiny compressed body (a few
    all-zero rows): a few kB on the wire, gigabytes if decoded."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(b"\0" * (1 + 3 * width)) for _ in range(rows)) + packer.flush()
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def jpeg_with_size(jpeg: bytes, width: int, height: int) -> bytes:
    """A real JPEG whose start-of-frame segment now declares width x height."""
    sof = jpeg.index(b"\xff\xc0")
    return jpeg[: sof + 5] + struct.pack(">HH", height, width) + jpeg[sof + 9 :]


def encode(ext: str, image: np.ndarray, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def client():
    app = create_app(Settings(model=BUNDLED_MODEL, max_body_bytes=MAX_BODY, max_frames=4))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def jpeg(frames) -> bytes:
    return frames[0].read_bytes()


@pytest.fixture(scope="module")
def small(frames) -> bytes:
    """A small real frame, so fuzzing that reaches inference stays quick."""
    image = cv2.resize(cv2.imread(str(frames[0])), (64, 36), interpolation=cv2.INTER_AREA)
    return encode(".jpg", image)


def assert_problem(r, status: int, *words: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert problem["request_id"] == r.headers["x-request-id"]
    for word in words:
        assert word in problem["detail"], problem["detail"]


# ---------------------------------------------------------------------------------------------- crafted bodies


def bad_bodies(jpeg: bytes) -> dict[str, tuple[bytes, str, int, str]]:
    """name → (body, content type, status, a word of the detail)."""
    png = encode(".png", np.full((64, 96, 3), 90, np.uint8))
    return {
        "zero-byte JPEG": (b"", "image/jpeg", 400, "empty"),
        "zero-byte PNG": (b"", "image/png", 400, "empty"),
        "JPEG cut at 200 bytes": (jpeg[:200], "image/jpeg", 400, "decoded"),
        "JPEG cut in half": (jpeg[: len(jpeg) // 2], "image/jpeg", 400, "decoded"),
        "JPEG without its last bytes": (jpeg[:-10], "image/jpeg", 400, "decoded"),
        "PNG cut at 20 bytes": (png[:20], "image/png", 400, "IHDR"),
        "PNG cut in half": (png[: len(png) // 2], "image/png", 400, "decoded"),
        "PNG signature only": (png[:8], "image/png", 400, "IHDR"),
        "text as JPEG": (b"hello, world", "image/jpeg", 400, "not a JPEG or PNG"),
        "BMP as PNG": (encode(".bmp", np.zeros((8, 8, 3), np.uint8)), "image/png", 400, "not a JPEG or PNG"),
        "TIFF as JPEG": (encode(".tiff", np.zeros((8, 8, 3), np.uint8)), "image/jpeg", 400, "not a JPEG or PNG"),
        "PNG bomb 50000x50000": (png_bomb(50_000, 50_000, rows=4), "image/png", 413, "50000x50000"),
        "PNG bomb 12000x12000": (png_bomb(12_000, 12_000), "image/png", 413, "12000x12000"),
        "JPEG SOF 65535x65535": (jpeg_with_size(jpeg, 65535, 65535), "image/jpeg", 413, "65535x65535"),
        "JPEG SOF 30000x20000": (jpeg_with_size(jpeg, 30000, 20000), "image/jpeg", 413, "30000x20000"),
        "JPEG SOF 0x0": (jpeg_with_size(jpeg, 0, 0), "image/jpeg", 400, "decoded"),
        "oversized body": (jpeg + b"\0" * MAX_BODY, "image/jpeg", 413, "bytes"),
        "no content type": (jpeg, "", 415, "none"),
        "text/plain": (jpeg, "text/plain", 415, "image/jpeg"),
        "application/octet-stream": (jpeg, "application/octet-stream", 415, "image/jpeg"),
        "image/gif": (jpeg, "image/gif", 415, "image/png"),
        "application/json": (b"{}", "application/json", 415, "multipart/form-data"),
        "multipart without boundary": (b"--x\r\n", "multipart/form-data", 400, "boundary"),
        "multipart garbage": (b"\0\1\2garbage", "multipart/form-data; boundary=b", 400, "multipart"),
        "multipart without parts": (b"--b--\r\n", "multipart/form-data; boundary=b", 422, "frames"),
    }


@pytest.mark.parametrize("name", list(bad_bodies(b"\xff\xd8\xff\xc0" + b"\0" * 16)))
def test_bad_bodies_get_their_documented_problem(client, jpeg, name):
    body, content_type, status, word = bad_bodies(jpeg)[name]
    headers = {"Content-Type": content_type} if content_type else {}
    assert_problem(client.post("/v1/perceive", content=body, headers=headers), status, word)


def multipart_cases(jpeg: bytes) -> dict[str, tuple[dict, int, str]]:
    """name → (httpx request arguments, status, a word of the detail)."""
    frame = ("frames", ("a.jpg", jpeg, "image/jpeg"))
    return {
        "no frames part": ({"files": [("other", ("a.jpg", jpeg, "image/jpeg"))]}, 422, "frames"),
        "frame typed text/plain": ({"files": [("frames", ("a.txt", jpeg, "text/plain"))]}, 415, "image/jpeg"),
        "frame without a type": ({"files": [("frames", ("a", jpeg, ""))]}, 415, "image/jpeg"),
        "too many frames": ({"files": [frame] * 5}, 400, "Too many files"),
        "too many fields": ({"files": [frame], "data": {f"f{i}": "x" for i in range(12)}}, 400, "Too many fields"),
        "frames over the body limit": (
            {"files": [("frames", ("a.jpg", jpeg + b"\0" * MAX_BODY, "image/jpeg"))]},
            413,
            "bytes",
        ),
        "metadata not JSON": ({"files": [frame], "data": {"metadata": "{"}}, 422, "not valid JSON"),
        "metadata an object": ({"files": [frame], "data": {"metadata": "{}"}}, 422, "JSON array of 1"),
        "metadata too long": ({"files": [frame], "data": {"metadata": "[{}, {}]"}}, 422, "JSON array of 1"),
        "metadata item a list": ({"files": [frame], "data": {"metadata": "[[]]"}}, 422, "must be an object"),
        "metadata unknown field": ({"files": [frame], "data": {"metadata": '[{"lens": 1}]'}}, 422, "unknown"),
        "camera_id a number": ({"files": [frame], "data": {"metadata": '[{"camera_id": 3}]'}}, 422, "wrong type"),
        "timestamp a bool": ({"files": [frame], "data": {"metadata": '[{"timestamp": true}]'}}, 422, "wrong type"),
        "timestamp NaN": ({"files": [frame], "data": {"metadata": '[{"timestamp": NaN}]'}}, 422, "finite"),
        "timestamp Infinity": ({"files": [frame], "data": {"metadata": '[{"timestamp": Infinity}]'}}, 422, "finite"),
        "focal_px 1e400": ({"files": [frame], "data": {"metadata": '[{"focal_px": 1e400}]'}}, 422, "finite"),
        "focal_px 0": ({"files": [frame], "data": {"metadata": '[{"focal_px": 0}]'}}, 422, "focal_px"),
        "camera_id of 300 chars": (
            {"files": [frame], "data": {"metadata": json.dumps([{"camera_id": "é" * 300}])}},
            422,
            "longer than 256",
        ),
        "metadata nested 100000 deep": (
            {"files": [frame], "data": {"metadata": "[" * 100_000 + "]" * 100_000}},
            422,
            "nested",
        ),
    }


@pytest.mark.parametrize("name", list(multipart_cases(b"")))
def test_malformed_multipart_gets_its_documented_problem(client, small, name):
    kwargs, status, word = multipart_cases(small)[name]
    assert_problem(client.post("/v1/perceive", **kwargs), status, word)


@pytest.mark.parametrize(
    ("query", "headers", "word"),
    [
        ("outputs=", {}, "outputs"),
        ("outputs=detections,faces", {}, "outputs"),
        ("segmentation_encoding=jpeg", {}, "segmentation_encoding"),
        ("depth_encoding=exr", {}, "depth_encoding"),
        ("score_threshold=2", {}, "score_threshold"),
        ("score_threshold=nan", {}, "score_threshold"),
        ("output_scale=0", {}, "output_scale"),
        ("output_scale=abc", {}, "output_scale"),
        ("", {"X-Deadline-Ms": "soon"}, "X-Deadline-Ms"),
        ("", {"X-Deadline-Ms": "0"}, "X-Deadline-Ms"),
        ("", {"X-Deadline-Ms": "-5"}, "X-Deadline-Ms"),
        ("", {"X-Deadline-Ms": "nan"}, "X-Deadline-Ms"),
        ("", {"X-Deadline-Ms": "1e309"}, "X-Deadline-Ms"),
    ],
)
def test_bad_options_are_422(client, small, query, headers, word):
    r = client.post(f"/v1/perceive?{query}", content=small, headers={"Content-Type": "image/jpeg", **headers})
    assert_problem(r, 422, word)


def test_roll_out_body_is_bounded_and_checked_before_it_is_read(client):
    # No admin key is configured here: every roll-out is 403, however large or malformed the body.
    assert (
        client.post(
            "/v1/models/load", content=b"{" * (1 << 20), headers={"Content-Type": "application/json"}
        ).status_code
        == 403
    )


def test_unicode_ids_are_echoed_or_replaced(client, small):
    ids = [{"camera_id": "前カメラ", "frame_id": "🚗\u202e\u0000x"}]
    r = client.post(
        "/v1/perceive", files=[("frames", ("a.jpg", small, "image/jpeg"))], data={"metadata": json.dumps(ids)}
    )
    assert r.status_code == 200, r.text
    frame = r.json()["frames"][0]
    assert (frame["camera_id"], frame["frame_id"]) == (ids[0]["camera_id"], ids[0]["frame_id"])
    # A request id that is not short printable ASCII is replaced by a fresh one (it goes into headers and logs).
    for supplied in ("café", "a\tb", "x" * 129, ""):
        r = client.post(
            "/v1/perceive",
            content=small,
            headers={"Content-Type": "image/jpeg", "X-Request-ID": supplied.encode()},
        )
        assert r.status_code == 200
        assert r.headers["x-request-id"] != supplied and len(r.headers["x-request-id"]) == 32
    r = client.post("/v1/perceive", content=small, headers={"Content-Type": "image/jpeg", "X-Request-ID": "cam-7/42"})
    assert r.headers["x-request-id"] == r.json()["request_id"] == "cam-7/42"


# ---------------------------------------------------------------------------------------------- unusual images


def pillow_image(mode: str, size: tuple[int, int], exif_orientation: int | None = None, fmt: str = "JPEG") -> bytes:
    image_module = pytest.importorskip("PIL.Image")
    image = image_module.new(mode, size, (0, 128, 128, 0) if mode == "CMYK" else "teal")
    buf = io.BytesIO()
    if exif_orientation:
        exif = image.getexif()
        exif[0x0112] = exif_orientation
        image.save(buf, fmt, exif=exif.tobytes())
    else:
        image.save(buf, fmt)
    return buf.getvalue()


def unusual_images() -> dict[str, tuple[callable, str, tuple[int, int]]]:
    """name → (body factory, content type, (width, height) the answer must report)."""
    gradient = np.tile(np.linspace(0, 65535, 48, dtype=np.uint16), (32, 1))
    return {
        "16-bit grey PNG": (lambda: encode(".png", gradient), "image/png", (48, 32)),
        "16-bit colour PNG": (lambda: encode(".png", np.dstack([gradient] * 3)), "image/png", (48, 32)),
        "grey JPEG": (lambda: encode(".jpg", np.full((30, 40), 77, np.uint8)), "image/jpeg", (40, 30)),
        "grey PNG": (lambda: encode(".png", np.full((30, 40), 77, np.uint8)), "image/png", (40, 30)),
        "RGBA PNG": (lambda: encode(".png", np.full((30, 40, 4), 200, np.uint8)), "image/png", (40, 30)),
        "palette PNG": (lambda: pillow_image("P", (40, 30), fmt="PNG"), "image/png", (40, 30)),
        "CMYK JPEG": (lambda: pillow_image("CMYK", (40, 30)), "image/jpeg", (40, 30)),
        "EXIF-rotated JPEG (orientation 6)": (lambda: pillow_image("RGB", (64, 32), 6), "image/jpeg", (32, 64)),
        "EXIF-rotated JPEG (orientation 8)": (lambda: pillow_image("RGB", (64, 32), 8), "image/jpeg", (32, 64)),
        "EXIF-mirrored JPEG (orientation 2)": (lambda: pillow_image("RGB", (64, 32), 2), "image/jpeg", (64, 32)),
        "progressive JPEG": (
            lambda: encode(".jpg", np.full((30, 40, 3), 99, np.uint8), cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
            "image/jpeg",
            (40, 30),
        ),
        "1x1 PNG": (lambda: encode(".png", np.full((1, 1, 3), 255, np.uint8)), "image/png", (1, 1)),
        "2x2 JPEG": (lambda: encode(".jpg", np.full((2, 2, 3), 10, np.uint8)), "image/jpeg", (2, 2)),
        "1x1000 PNG": (lambda: encode(".png", np.full((1000, 1, 3), 50, np.uint8)), "image/png", (1, 1000)),
        "portrait 720x1280 JPEG": (
            lambda: encode(".jpg", np.full((1280, 720, 3), 120, np.uint8)),
            "image/jpeg",
            (720, 1280),
        ),
        "PNG sent as image/jpeg": (lambda: encode(".png", np.full((30, 40, 3), 9, np.uint8)), "image/jpeg", (40, 30)),
    }


def decode_png(data: str) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize("name", list(unusual_images()))
def test_unusual_but_valid_images_are_answered(client, name):
    make, content_type, (width, height) = unusual_images()[name]
    r = client.post("/v1/perceive", content=make(), headers={"Content-Type": content_type})
    assert r.status_code == 200, r.text
    frame = r.json()["frames"][0]
    assert (frame["width"], frame["height"]) == (width, height)
    md = client.app.state.perception.engine.metadata  # maps: the model's resolution, never above the image's
    scale = min(md.input_width / width, md.input_height / height, 1.0)
    map_shape = (max(1, round(height * scale)), max(1, round(width * scale)))
    assert decode_png(frame["segmentation"]["data"]).shape == map_shape
    assert decode_depth(frame["depth"]).shape == map_shape
    for det in frame["detections"]:
        x1, y1, x2, y2 = det["box"]
        assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height


# ---------------------------------------------------------------------------------------------- the decoder


def test_the_decoder_reads_sizes_before_decoding(frames):
    jpeg = frames[0].read_bytes()
    assert declared_size(jpeg) == (1280, 720)
    assert declared_size(png_bomb(50_000, 40_000, rows=1)) == (50_000, 40_000)
    progressive = encode(".jpg", np.zeros((7, 5, 3), np.uint8), cv2.IMWRITE_JPEG_PROGRESSIVE, 1)
    assert declared_size(progressive) == (5, 7)
    with pytest.raises(ImageTooLarge):
        decode_image(png_bomb(50_000, 50_000, rows=1), MAX_PIXELS)
    with pytest.raises(ImageTooLarge, match="1280x720"):
        decode_image(jpeg, 1280 * 720 - 1)
    assert decode_image(jpeg, 1280 * 720).shape == (720, 1280, 3)


def mutations(data: bytes):
    """Strategies that damage a valid file: truncate, flip bytes, splice in random bytes."""
    size = len(data)
    cut = st.integers(0, size).map(lambda n: data[:n])
    flip = st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, 255)), min_size=1, max_size=8).map(
        lambda edits: bytes(_apply(data, edits))
    )
    splice = st.tuples(st.integers(0, size), st.binary(max_size=64)).map(lambda t: data[: t[0]] + t[1] + data[t[0] :])
    return st.one_of(cut, flip, splice)


def _apply(data: bytes, edits) -> bytearray:
    out = bytearray(data)
    for i, value in edits:
        out[i] = value
    return out


SMALL_PNG = encode(".png", np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8))
SMALL_JPEG = encode(".jpg", np.random.default_rng(1).integers(0, 255, (24, 32, 3), dtype=np.uint8))


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=256),
        mutations(SMALL_PNG),
        mutations(SMALL_JPEG),
        st.binary(max_size=64).map(lambda b: b"\x89PNG\r\n\x1a\n" + b),
        st.binary(max_size=64).map(lambda b: b"\xff\xd8" + b),
    )
)
def test_the_decoder_returns_an_image_or_raises_image_error(data):
    try:
        image = decode_image(data, 100_000)
    except ImageError:
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] * image.shape[1] <= 100_000


# ---------------------------------------------------------------------------------------------- endpoint fuzz


def rss_kb() -> int:
    return proc_status(os.getpid())["VmRSS"]


CONTENT_TYPES = [
    "image/jpeg",
    "image/png",
    "multipart/form-data",
    "multipart/form-data; boundary=xyz",
    "text/plain",
    "",
    "image/jpeg; q=1",
    "IMAGE/PNG",
    "application/x-www-form-urlencoded",
]


@FUZZ
@given(
    body=st.one_of(st.binary(max_size=512), mutations(SMALL_JPEG), mutations(SMALL_PNG)),
    content_type=st.sampled_from(CONTENT_TYPES),
    query=st.dictionaries(
        st.sampled_from(["outputs", "segmentation_encoding", "depth_encoding", "score_threshold", "output_scale"]),
        st.text(max_size=12),
        max_size=3,
    ),
    deadline=st.one_of(st.none(), st.text(st.characters(exclude_categories=("Cc",)), max_size=8), st.floats().map(str)),
)
def test_fuzzed_requests_get_an_answer_or_a_documented_problem(client, body, content_type, query, deadline):
    headers = {"Content-Type": content_type} if content_type else {}
    if deadline is not None:
        headers["X-Deadline-Ms"] = deadline.encode("utf-8", "replace")  # bytes: any octets, as on the wire
    r = client.post("/v1/perceive", content=body, headers=headers, params=query)
    assert r.status_code in {200, 504} | PROBLEM_STATUSES, (r.status_code, r.text)
    if r.status_code != 200:
        assert r.headers["content-type"].startswith("application/problem+json") and r.json()["detail"]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=10,
)
METADATA_ITEM = st.dictionaries(
    st.sampled_from(["camera_id", "frame_id", "timestamp", "focal_px", "other"]), JSON_VALUES, max_size=4
)


@FUZZ
@given(
    metadata=st.one_of(
        st.lists(METADATA_ITEM, min_size=0, max_size=3).map(json.dumps),
        JSON_VALUES.map(json.dumps),
        st.text(max_size=40),
    )
)
def test_fuzzed_metadata_gets_an_answer_or_a_422(client, small, metadata):
    r = client.post("/v1/perceive", files=[("frames", ("a.jpg", small, "image/jpeg"))], data={"metadata": metadata})
    assert r.status_code in (200, 422), (r.status_code, r.text)
    if r.status_code == 200:
        json.dumps(r.json(), allow_nan=False)  # the answer is strict JSON


def test_fuzzing_leaves_memory_flat(client, small):
    """After the fuzz tests above, a burst of hostile requests does not grow the process."""
    bodies = [png_bomb(12_000, 12_000), jpeg_with_size(small, 65535, 65535), small[:100], b"\0" * 1000]
    for body in bodies:  # warm up every path once
        client.post("/v1/perceive", content=body, headers={"Content-Type": "image/png"})
    before = rss_kb()
    for _ in range(20):
        for body in bodies:
            assert client.post("/v1/perceive", content=body, headers={"Content-Type": "image/png"}).status_code in (
                400,
                413,
            )
    assert rss_kb() - before < 30 * 1024


# ---------------------------------------------------------------------------------------------- a real server


@pytest.fixture(scope="module")
def server(serve) -> RunningServer:
    return serve({"PERCEPTION_MODEL": str(BUNDLED_MODEL)})


def test_bombs_do_not_reach_the_decoder_on_a_real_server(server, jpeg):
    peak_before = proc_status(server.process.pid)["VmHWM"]
    bombs = [png_bomb(12_000, 12_000), png_bomb(50_000, 50_000, rows=4), jpeg_with_size(jpeg, 30000, 20000)]
    for body in bombs:
        r = httpx.post(server.url + "/v1/perceive", content=body, headers={"Content-Type": "image/png"}, timeout=30)
        assert_problem(r, 413, "declares")
    peak_after = proc_status(server.process.pid)["VmHWM"]
    print(
        f"\nbombs: server peak RSS {peak_before / 1024:.0f} -> {peak_after / 1024:.0f} MB "
        f"(the 12000x12000 PNG alone would need {12_000 * 12_000 * 3 / 2**20:.0f} MB decoded)"
    )
    assert peak_after - peak_before < 50 * 1024


def test_huge_headers_are_answered_and_the_server_stays_up(server, jpeg):
    huge = "x" * 60_000
    r = httpx.post(
        server.url + "/v1/perceive",
        content=jpeg,
        timeout=30,
        headers={"Content-Type": "image/jpeg", "X-Request-ID": huge, "X-Padding": huge},
    )
    assert r.status_code == 200 and r.headers["x-request-id"] != huge  # too long: a fresh id
    many = {f"X-Pad-{i}": "y" * 100 for i in range(500)}
    r = httpx.post(
        server.url + "/v1/perceive", content=jpeg, headers={"Content-Type": "image/jpeg", **many}, timeout=30
    )
    assert r.status_code in (200, 400, 431), r.status_code
    r = httpx.get(server.url + "/v1/models", headers={"Authorization": "Bearer " + "k" * 200_000}, timeout=30)
    assert r.status_code in (200, 400, 431), r.status_code  # no keys configured: inference routes are open
    assert httpx.get(server.url + "/healthz").status_code == 200
    assert server.process.poll() is None


def test_lying_content_length_is_answered(server, jpeg):
    """A declared length over the limit is refused before the body is read; the server stays up."""
    host, port = server.url.removeprefix("http://").split(":")
    head = f"POST /v1/perceive HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {1 << 30}\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + jpeg[:1000])
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    assert b"application/problem+json" in answer
    assert httpx.get(server.url + "/healthz").status_code == 200
