"""Screenshots of the Train page's lab notebook for the README: two runs that differ in n_head, the runs
table with its verdict, then the same after repeating one run with two more seeds.

    python -m tools.experiment_shots [--out docs] [--iters 300]

Starts its own server and Debian's Chromium (1440x900); about two minutes on a quiet 2-core machine.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from playwright.sync_api import sync_playwright

from tools.chromium import launch, wait_idle
from tools.server import ROOT, Server


def train(page, name_end: str):
    page.get_by_role("button", name="Train", exact=True).click()
    finished(page, name_end)


def finished(page, name_end: str):
    page.get_by_text(re.compile(re.escape(name_end) + r": Finished")).first.wait_for(timeout=600_000)
    wait_idle(page)


def shot(page, path: Path, top, bottom):
    """From one element's top to another's bottom, full width, as the 1440x900 window shows it."""
    page.evaluate("el => el.scrollIntoView({block: 'start'})", top.element_handle())
    page.wait_for_timeout(300)
    a, b = top.bounding_box(), bottom.bounding_box()
    y = max(a["y"] - 10, 0)
    page.screenshot(path=str(path), clip={"x": 0, "y": y, "width": 1440,
                                          "height": min(b["y"] + b["height"] + 20, 900) - y})


def notebook_shots(page, out: Path, names: tuple[str, str]):
    heading = page.get_by_role("heading", name="Compare your runs")
    table = page.locator("[data-testid=stDataFrame]")
    verdict = page.locator("[data-testid=stAlert]").filter(has_text="→")
    shot(page, out / names[0], heading, table)
    shot(page, out / names[1], page.locator("[data-testid=stSelectbox]").filter(has_text="Compare"), verdict)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "docs"))
    p.add_argument("--iters", type=int, default=300)
    args = p.parse_args(argv)
    out = Path(args.out)
    server = Server()
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(f"{server.url}/train?train_n_layer=2&train_n_embd=64&train_block_size=32"
                      f"&train_max_iters={args.iters}&train_eval_interval=50")
            wait_idle(page)
            train(page, f"iters {args.iters}")
            thumb = page.locator('input[type=range][aria-label="n_head (heads per block)"]')
            thumb.focus()
            thumb.press("ArrowRight")  # 4 -> 8 heads
            page.wait_for_timeout(300)
            wait_idle(page)
            train(page, f"n_head 8 · n_embd 64 · block 32 · iters {args.iters}")
            notebook_shots(page, out, ("runs-table.png", "verdict.png"))
            page.get_by_role("button", name="Repeat with two more seeds").click()
            finished(page, "seed 1339")
            notebook_shots(page, out, ("seed-spread.png", "verdict-seeds.png"))
            browser.close()
    finally:
        server.stop()
    print("wrote runs-table.png, verdict.png, seed-spread.png and verdict-seeds.png in", out)


if __name__ == "__main__":
    main()
