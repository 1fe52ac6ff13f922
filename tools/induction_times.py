"""Induction heads, timed in a real browser: the Train page's *induction* preset from the click on Train until
the run has finished, and a student sliding the induction model's timeline on the Attention page (which redraws
the grid, the head up close and the three phase-change charts) as tools/browser_times times an interaction.

    python -m tools.induction_times [--moves 20] [--skip-train]

Starts the real app and Debian's Chromium. Prints the training's seconds from the click to its end and what the
Attention page then says of the run (the step where an induction head formed); then the median and p90 in ms of
one arrow-key move of the bundled induction model's timeline slider.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

from playwright.sync_api import sync_playwright

from tools.browser_times import Driver, p90, pick_model
from tools.chromium import launch, wait_idle
from tools.server import Server
from ui import lesson, models


def train(browser, url: str):
    """Pick the induction preset, press Train, wait for the end; seconds from the click, and the step of 0.5."""
    page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    page.goto(f"{url}/train")
    wait_idle(page)
    box = page.locator('input[role=combobox][aria-label="Preset (the lecture\'s ladder)"]').first
    box.click()
    box.press_sequentially("Induction head")
    box.press("Enter")
    wait_idle(page)
    start = time.perf_counter()
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text(re.compile(r": Finished \d+ steps")).first.wait_for(timeout=900_000)
    seconds = time.perf_counter() - start
    text = page.get_by_text(re.compile(r": Finished \d+ steps")).first.inner_text()
    page.get_by_role("link", name="Attention").click()
    page.get_by_text(re.compile("An induction head forms at step|No head reaches")).first.wait_for(timeout=300_000)
    formed = page.get_by_text(re.compile("An induction head forms at step|No head reaches")).first.inner_text()
    page.context.close()
    return seconds, f"{text}; Attention page: {formed.split(':')[0]}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--moves", type=int, default=20)
    p.add_argument("--skip-train", action="store_true", help="only the timeline slider")
    args = p.parse_args(argv)
    server = Server()
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            if not args.skip_train:
                seconds, text = train(browser, server.url)
                print(f"Train page, induction preset: {seconds:.1f} s from the click to the end ({text})")
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
