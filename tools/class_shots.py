"""A lesson with the Class page in real browsers, and the docs' screenshots of it: a teacher starts a class,
students join and train tiny models with different n_head, the board groups them, and a question is
revealed. The browser test (tests/browser/test_classroom.py) drives the same steps.

    python -m tools.class_shots [--out docs] [--students 4]

Starts its own server and Debian's Chromium; writes class-board-*.png and class-reveal-*.png at 1440x900 and
1280x720. About a minute on a quiet 2-core machine.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

from tools.chromium import launch, wait_idle
from tools.server import ROOT, Server

SIZES = ((1440, 900), (1280, 720))
CODE = re.compile(r"\b([A-Z2-9]{3}) ([A-Z2-9]{3})\b")
TINY = {"train_n_layer": 1, "train_n_embd": 16, "train_block_size": 16, "train_max_iters": 40,
        "train_eval_interval": 20}  # a few seconds of training even on a busy host


def start_class(page, url: str) -> str:
    """The teacher opens the Class page and starts a class; returns its code."""
    page.goto(f"{url}/classroom")
    wait_idle(page)
    page.get_by_role("button", name="Start a class").click()
    heading = page.get_by_role("heading", name=re.compile("Class code"))
    heading.wait_for()
    wait_idle(page)
    return "".join(CODE.search(heading.inner_text()).groups())


def join(page, url: str, code: str, name: str):
    page.goto(f"{url}/classroom")
    wait_idle(page)
    for label, value in (("Class code", code.lower()), ("Your name on the board", name)):
        box = page.get_by_role("textbox", name=label)
        box.fill(value)
        box.press("Enter")
        wait_idle(page)
    page.get_by_role("button", name="Join the class").click()
    page.get_by_text(f"you are {name}").wait_for()
    wait_idle(page)


def train(page, url: str, n_head: int, seed: int = 1337, timeout_ms: int = 300_000, iters: int = 40):
    """A tiny run from a Train link; waits until it has finished (and so is on the board)."""
    settings = {**TINY, "train_n_head": n_head, "train_seed": seed, "train_max_iters": iters}
    query = "&".join(f"{k}={v}" for k, v in settings.items())
    page.goto(f"{url}/train?{query}")
    wait_idle(page)
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text(re.compile(r"Finished \d+ steps")).first.wait_for(timeout=timeout_ms)
    wait_idle(page)


def goto(page, link: str, title: str):
    page.get_by_role("link", name=link).click()
    page.locator("h1").filter(has_text=title).first.wait_for()
    wait_idle(page)


def pick(page, label: str, option: str, tries: int = 3):
    """Choose an option of a selectbox by its label (again, if a rerun redrew the list while it was open)."""
    box = page.locator("[data-testid=stMain] [data-testid=stSelectbox]").filter(
        has=page.get_by_text(label, exact=True)).first
    for _ in range(tries):
        wait_idle(page)
        box.locator("input[role=combobox]").click()
        try:
            page.get_by_role("option", name=option, exact=True).first.click(timeout=5_000)
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            continue
        wait_idle(page)
        if box.locator("input").input_value() == option:
            return
    raise AssertionError(f"could not pick {option!r} in {label!r}")


def push(page):
    page.get_by_role("button", name="Push this view to the class").click()
    page.get_by_text(re.compile(r"Pushed \(#\d+\)")).wait_for()
    wait_idle(page)


def ask(page, question: str):
    page.get_by_role("button", name=re.compile(re.escape(question))).click()
    wait_idle(page)


def answer_token(page, typed: str | None = None):
    """A student answers the open token question: types a character, or takes the picked token."""
    page.get_by_text("Predict first").wait_for(timeout=30_000)
    wait_idle(page)
    if typed:
        box = page.get_by_role("textbox", name="…or type it")
        box.fill(typed)
        box.press("Enter")
        wait_idle(page)
    page.get_by_role("button", name="Submit").click()
    page.get_by_text("Your guess").wait_for()
    wait_idle(page)


def reveal(page, answers: int):
    page.get_by_text(f"{answers} of").wait_for(timeout=30_000)
    page.get_by_role("button", name="Reveal").click()
    page.get_by_text("The class guessed").wait_for()
    wait_idle(page)


def shots(page, out: Path, name: str, top: str):
    """The window from a heading down, at each size."""
    for w, h in SIZES:
        page.set_viewport_size({"width": w, "height": h})
        wait_idle(page)
        page.get_by_text(top).first.scroll_into_view_if_needed()
        page.evaluate("t => { const el = [...document.querySelectorAll('h1,h2,h3,p,strong')]"
                      ".find(e => e.textContent.includes(t)); if (el) el.scrollIntoView({block: 'start'}); }", top)
        page.wait_for_timeout(400)
        page.screenshot(path=str(out / f"{name}-{w}x{h}.png"))


def lesson(browser, url: str, out: Path, students: int, iters: int):
    teacher = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    code = start_class(teacher, url)
    pupils = []
    heads = [1, 2, 4, 4, 8, 1, 2, 8][:students]
    for i, n_head in enumerate(heads):
        p = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
        join(p, url, code, ["Ada", "Ben", "Chen", "Dee", "Eli", "Fay", "Gus", "Hana"][i])
        train(p, url, n_head, seed=1337 + i, iters=iters)
        p.goto(f"{url}/classroom")  # off the Train page, whose link-bound sliders a push cannot leave
        wait_idle(p)
        pupils.append(p)
    teacher.get_by_text(f"The class board · {len(heads)} runs").wait_for(timeout=30_000)
    wait_idle(teacher)
    shots(teacher, out, "class-board", "The class board")
    goto(teacher, "Next token", "Next token")
    ask(teacher, "which token comes next?")
    for i, p in enumerate(pupils):
        answer_token(p, typed=[None, "e", " ", "e", "o", None, "a", "e"][i])
    reveal(teacher, len(pupils))
    shots(teacher, out, "class-reveal", "Predict, then reveal")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "docs"))
    p.add_argument("--students", type=int, default=4)
    p.add_argument("--iters", type=int, default=200, help="training steps of each student's run")
    args = p.parse_args(argv)
    server = Server()
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            lesson(browser, server.url, Path(args.out), args.students, args.iters)
            browser.close()
    finally:
        server.stop()
    print("wrote class-board-*.png and class-reveal-*.png in", args.out)


if __name__ == "__main__":
    main()
