"""Screenshots of the induction lesson for docs/induction.md: the bundled induction model on a repeated line
(its induction head up close), and the training timeline's phase change, before and after the head forms.

    python -m tools.induction_shots [--out docs]

Starts its own server and Debian's Chromium; writes induction-head-WxH.png, induction-timeline-WxH.png and
induction-before-WxH.png at 1440x900 and 1280x720.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

from tools.chromium import launch, wait_idle
from tools.server import ROOT, Server
from ui import lesson

SIZES = [(1440, 900), (1280, 720)]
TIMELINE = 'input[type=range][aria-label="Training step (timeline)"]'


def top_at(page, locator):
    locator.first.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(500)


def shots(browser, url: str, out: Path, width: int, height: int):
    page = browser.new_page(viewport={"width": width, "height": height})  # a new session at each size
    page.goto(f"{url}/")  # the lesson
    wait_idle(page, timeout=180_000)
    page.get_by_role("button", name=lesson.STEPS[-1].button).click()
    page.locator("h1").filter(has_text="Attention").first.wait_for(timeout=180_000)
    wait_idle(page, timeout=180_000)
    top_at(page, page.get_by_role("heading", name="One head up close"))
    page.screenshot(path=str(out / f"induction-head-{width}x{height}.png"))
    timeline = page.get_by_role("heading", name="The training timeline: when did each head learn its job?")
    top_at(page, timeline)
    page.screenshot(path=str(out / f"induction-timeline-{width}x{height}.png"))
    thumb = page.locator(TIMELINE)
    thumb.focus()
    thumb.press("Home")
    wait_idle(page)
    for _ in range(10):  # step 400 of the bundled model's timeline: before the head shows (0.08)
        thumb.press("ArrowRight")
    page.wait_for_timeout(300)
    wait_idle(page)
    top_at(page, page.get_by_role("heading", name="One head up close"))
    page.screenshot(path=str(out / f"induction-before-{width}x{height}.png"))
    page.close()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "docs"))
    args = p.parse_args(argv)
    out = Path(args.out)
    server = Server()
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            for width, height in SIZES:
                shots(browser, server.url, out, width, height)
            browser.close()
    finally:
        server.stop()
    print("wrote induction-head, induction-timeline and induction-before screenshots in", out)


if __name__ == "__main__":
    main()
