"""The whole lesson in a real browser: every step's button opens its page with its settings."""

import os
import re

from gptviz.model import PRESET_TITLES
from ui import lesson
from ui.training import preset_values

from .conftest import ARTIFACTS, open_page, wait_idle

TITLES = {"pages/data.py": "Data & tokens", "pages/train.py": "Train", "pages/averaging.py": "The averaging trick",
          "pages/head_steps.py": "One head, step by step", "pages/attention.py": "Attention",
          "pages/neurons.py": "MLP neurons"}
SIZES = [(1280, 720), (1440, 900)]  # a laptop and a projector-friendly screen: the docs' screenshots


def heading(page) -> str:
    return page.locator("h1").first.inner_text().strip()


def what_the_step_set_up(page, step):
    """What a student sees of the step's settings on the page it opened."""
    if step.preset:
        preset = page.locator("[data-testid=stSelectbox]").filter(has_text="Preset").first
        assert preset.locator("input").input_value() == PRESET_TITLES[step.preset]
        n_layer = page.locator('input[type=range][aria-label="n_layer (blocks)"]')
        assert n_layer.input_value() == str(preset_values(step.preset)["n_layer"])
    if "prompt" in step.settings:
        assert page.locator("[data-testid=stMain] textarea").first.input_value() == step.settings["prompt"]
    if step.head:
        last = len(step.settings["prompt"]) - 1  # a character model: one token per character
        shown = rf"Layer \d, head \d; the query is token {last} " if step.page == "pages/head_steps.py" else \
            r"Layer \d, head \d\. Click a cell"  # the Attention page's head up close
        assert page.get_by_text(re.compile(shown)).count() == 1
    assert page.locator("[data-testid=stException]").count() == 0


# where each page's screenshot looks: the part that shows what the page is for
SHOW = {"head_steps": ".st-key-steps_box_qkv", "averaging": "text=1. a loop over the past"}


def shoot(page, name):
    """With GPTVIZ_DOCS=1: the docs' screenshots at both sizes in test-artifacts/screenshots."""
    if not os.environ.get("GPTVIZ_DOCS"):
        return
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(400)
        if name in SHOW:
            page.locator(SHOW[name]).first.evaluate("e => e.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(400)
        (ARTIFACTS / "screenshots").mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "screenshots" / f"{name}-{width}x{height}.png"))
    page.set_viewport_size({"width": 1400, "height": 2200})


def test_a_student_walks_the_whole_lesson(page, server):
    open_page(page, server)
    assert heading(page) == "Let's build GPT: a lesson"  # the page the app opens on
    shoot(page, "lesson")
    for n, step in enumerate(lesson.STEPS, start=1):
        page.get_by_role("button", name=step.button).click()
        page.locator("h1").filter(has_text=TITLES[step.page]).first.wait_for(timeout=60_000)
        wait_idle(page)
        assert heading(page) == TITLES[step.page], step.title
        what_the_step_set_up(page, step)
        if step.page in ("pages/head_steps.py", "pages/averaging.py", "pages/neurons.py"):
            shoot(page, step.page.split("/")[1].removesuffix(".py"))
        page.get_by_role("link", name="Lesson").click()
        page.locator("h1").filter(has_text="a lesson").first.wait_for()
        wait_idle(page)
        if n < len(lesson.STEPS):  # the next step is the one highlighted
            assert page.locator("h3").filter(has_text=f"👉 {n + 1}.").count() == 1
    page.get_by_text("Larger text (projector)").click()
    wait_idle(page)
    assert page.locator("[data-testid=stMainBlockContainer]").evaluate("e => getComputedStyle(e).zoom") == "1.3"
    shoot(page, "lesson-projector")
