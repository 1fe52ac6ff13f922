"""How long a student waits when sliding the induction model's timeline on the Attention page (which redraws the
grid, the head up close and the three phase-change charts), timed in a real browser as tools/browser_times does.

    python -m tools.induction_times [--moves 20]

Starts the real app and Debian's Chromium; prints the median and p90 in ms of one arrow-key move of the slider.
"""

from __future__ import annotations

import argparse
import statistics

from playwright.sync_api import sync_playwright

from tools.browser_times import Driver, p90, pick_model
from tools.chromium import launch, wait_idle
from tools.server import Server
from ui import lesson, models


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--moves", type=int, default=20)
    args = p.parse_args(argv)
    server = Server()
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            d = Driver(browser, server.url)
            d.open("attention")
            pick_model(d, f"💾 {models.INDUCTION_CHECKPOINT}")
            d.edit_prompt(lesson.INDUCTION_PROMPT)
            wait_idle(d.page)
            d.page.locator('[aria-label="Training step (timeline)"]').first.focus()
            d.page.keyboard.press("Home")  # the first move pays for scoring the whole timeline once
            wait_idle(d.page, timeout=180_000)
            for i in range(args.moves):
                d.time("move the timeline", d.slider("Training step (timeline)", "ArrowRight"))
            ms = d.timings["move the timeline"].ms
            print(f"timeline moves: {len(ms)}, median {statistics.median(ms):.0f} ms, p90 {p90(ms):.0f} ms")
            browser.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
