"""The web page at / in headless Chromium (Debian's package, driven by Playwright): pick a frame,
wait for the answer, check that the overlays and timings were drawn."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

# Distinct colours in a canvas (every 7th pixel), and whether it has been drawn at all.
DISTINCT_COLOURS = """(id) => {
  const c = document.getElementById(id);
  const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  const seen = new Set();
  for (let i = 0; i < px.length; i += 28) seen.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
  return {width: c.width, height: c.height, colours: seen.size};
}"""


@pytest.fixture(scope="module")
def page(bundled_server, tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); "
                    "scripts/test.sh does this when run as root")  # fmt: skip
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: pip install -e '.[dev]' (never 'playwright install')")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS,
        )  # fmt: skip
        page = context.new_page()
        requested: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        page.goto(bundled_server.url + "/")
        page.requested = requested
        yield page
        context.close()


def wait_for_answer(page) -> str:
    page.wait_for_function("['done', 'error'].includes(document.getElementById('status').textContent)",
                           timeout=60_000)  # fmt: skip
    return page.text_content("#status")


@pytest.mark.slow
def test_page_draws_the_answer(page, frames, bundled_server):
    page.set_input_files("#file", str(frames[0]))
    status = wait_for_answer(page)
    assert status == "done", page.text_content("#error")

    overlay = page.evaluate(DISTINCT_COLOURS, "overlay")
    assert (overlay["width"], overlay["height"]) == (1280, 720)
    assert overlay["colours"] > 100, overlay  # the photo with boxes, not a blank canvas
    for canvas in ("segmentation", "depth"):  # drawn at the maps' own size: the model's resolution
        drawn = page.evaluate(DISTINCT_COLOURS, canvas)
        assert (drawn["width"], drawn["height"]) == (640, 360) and drawn["colours"] > 10, (canvas, drawn)

    rows = page.eval_on_selector_all("#timings tbody tr", "rows => rows.map(r => r.innerText)")
    names = [r.split("\t")[0] for r in rows]
    assert {"decode", "queue", "inference", "encode", "total"} <= set(names), rows
    assert all("ms" in r for r in rows if not r.startswith("batch")), rows
    assert "drivenet" in page.text_content("#model")
    assert page.text_content("#legend").strip()  # the segmentation legend from the answer

    own = (bundled_server.url, "data:", "blob:")
    assert all(url.startswith(own) for url in page.requested), page.requested  # nothing from outside


@pytest.mark.slow
def test_page_shows_the_problem_detail(page, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    page.set_input_files("#file", str(bad))
    assert wait_for_answer(page) == "error"
    error = page.text_content("#error")
    assert "400" in error and "decoded" in error, error
