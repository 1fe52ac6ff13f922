"""Screenshots of every chart students read, at a laptop's and a classroom projector's size.

    python -m tools.chart_shots --out docs/shots [--app-dir DIR] [--checkpoint extra.safetensors ...]

Starts the real app in a copy of `--app-dir` (default: this repository) with the extra checkpoints added to
its checkpoints/ folder, drives Debian's Chromium through each page and writes PNGs named
<view>-<width>x<height>.png. Look at them: that is what a class sees.
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
from pathlib import Path

from tools import chromium
from tools.server import ROOT, Server

VIEWPORTS = [(1440, 900), (1280, 720)]


def wait_idle(page):
    """A longer settling pause than the tests': a screenshot must catch finished drawings."""
    chromium.wait_idle(page, timeout=120_000, settle_ms=400)


def app_copy(app_dir: Path, checkpoints: list[Path]) -> Path:
    """A throw-away copy of the app with the extra checkpoints in its checkpoints/ folder."""
    tmp = Path(tempfile.mkdtemp(prefix="gptviz-shots-")) / "app"
    shutil.copytree(app_dir, tmp, ignore=shutil.ignore_patterns(".git", ".venv", "test-artifacts", "__pycache__",
                                                               "docs", "runs"))
    for path in checkpoints:
        shutil.copy(path, tmp / "checkpoints" / path.name)
    return tmp


def pick_model(page, name: str):
    page.locator("[data-testid=stSidebar] input[role=combobox]").click()
    page.get_by_role("option", name=name).first.click()
    wait_idle(page)


def click_text(page, text: str):
    """Click a radio option (its label) by its exact text."""
    # force: Playwright sometimes sees the radio as inert (a collapsed expander on the page), a student does not
    page.locator("label").filter(has_text=re.compile(f"^{re.escape(text)}$")).first.click(force=True)
    wait_idle(page)


def slider_to(page, label: str, *keys):
    thumb = page.locator(f'input[type=range][aria-label="{label}"]').first
    thumb.focus()
    for key in keys:
        thumb.press(key)
    page.wait_for_timeout(300)
    wait_idle(page)


def shoot(page, out: Path, name: str, size, element: str | None = None, nth: int = 0):
    """The whole page, or one element of it (a CSS selector, the nth match)."""
    path = out / f"{name}-{size[0]}x{size[1]}.png"
    if element:
        target = page.locator(element).nth(nth)
        target.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        target.screenshot(path=str(path))
    else:
        page.screenshot(path=str(path), full_page=True)
    print("wrote", path)


PLOTLY, VEGA = "[data-testid=stPlotlyChart]", "[data-testid=stVegaLiteChart]"
PAGES = ("data", "attention", "next_token", "layers", "compare", "embeddings")


def run(url: str, out: Path, size, eight_head: str | None, bpe: str | None, pages=PAGES):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = chromium.launch(p)
        page = browser.new_context(viewport={"width": size[0], "height": size[1]}).new_page()
        go = lambda path: (page.goto(f"{url}/{path}"), wait_idle(page))  # noqa: E731

        if "data" in pages:
            go("data")  # first: a popover left open by a model pick makes the page inert
            click_text(page, "GPT-2 BPE (50,257 tokens)")
            shoot(page, out, "data-frequent-tokens", size, PLOTLY, 0)
            click_text(page, "Dorothy and the Wizard in Oz (0.2 MB)")
            click_text(page, "BPE trained on this text")
            shoot(page, out, "data-bpe-page", size)

        if "attention" in pages:
            go("attention")
            shoot(page, out, "attention-page", size)
            shoot(page, out, "attention-grid", size, PLOTLY, 0)
            shoot(page, out, "sidebar", size, "[data-testid=stSidebar]")
            page.locator(VEGA).first.scroll_into_view_if_needed()
            shoot(page, out, "attention-head", size, "[data-testid=stHorizontalBlock]:has([data-testid=stVegaLiteChart])")
            if eight_head:
                pick_model(page, eight_head)
                shoot(page, out, "attention-grid-8heads", size, PLOTLY, 0)

        if "next_token" in pages:
            go("next_token")
            slider_to(page, "Temperature", "End")
            shoot(page, out, "next-token", size, PLOTLY, 0)

        if "layers" in pages:
            go("layers")
            shoot(page, out, "layers-page", size)

        if "compare" in pages:
            go("compare")
            shoot(page, out, "loss-chart", size, PLOTLY, 0)

        if "embeddings" in pages:
            go("embeddings")
            shoot(page, out, "embeddings-2d", size, PLOTLY, 0)
            click_text(page, "3-D")
            click_text(page, "frequency in the training text")
            page.wait_for_timeout(1500)  # WebGL draws after the rerun
            shoot(page, out, "embeddings-3d", size, PLOTLY, 0)
            if bpe:
                pick_model(page, bpe)
                click_text(page, "2-D")
                shoot(page, out, "embeddings-bpe", size, PLOTLY, 0)

        browser.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--app-dir", type=Path, default=ROOT)
    parser.add_argument("--checkpoint", type=Path, action="append", default=[],
                        help="extra checkpoints to offer (e.g. an 8-head model, a BPE model)")
    parser.add_argument("--size", action="append", default=None, help="WIDTHxHEIGHT (default: 1440x900 and 1280x720)")
    parser.add_argument("--pages", default=",".join(PAGES), help="which pages to shoot (default: all)")
    args = parser.parse_args(argv)
    sizes = [tuple(int(n) for n in size.split("x")) for size in args.size] if args.size else VIEWPORTS
    args.out.mkdir(parents=True, exist_ok=True)
    names = [c.stem for c in args.checkpoint]
    eight = next((n for n in names if "8head" in n), None)
    bpe = next((n for n in names if "bpe" in n), None)
    app = app_copy(args.app_dir, args.checkpoint)
    server = Server(app, log_path=app.parent / "server.log")
    try:
        for size in sizes:
            run(server.url, args.out, size, eight, bpe, args.pages.split(","))
    finally:
        server.stop()
        shutil.rmtree(app.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
