"""The phase change in a real browser: the lesson's last step opens the induction model on a repeated line,
and sliding the timeline across the step where the induction head forms makes its stripe appear."""

import re

from gptviz import induction
from gptviz.checkpoints import CHECKPOINT_DIR, load_checkpoint
from gptviz.data import REPEATED_CORPUS, corpus_text
from ui import lesson

from .conftest import open_page, wait_idle

TIMELINE = 'input[type=range][aria-label="Training step (timeline)"]'


def formation_and_steps() -> tuple[int, int, list[int]]:
    """Where the bundled model's induction head forms, the last step before it shows any sign of one (best
    score under 0.1), and the timeline's steps, by the engine (what the page should agree with)."""
    ck = load_checkpoint(CHECKPOINT_DIR / f"{lesson.models.INDUCTION_CHECKPOINT}.safetensors")
    val = ck.tokenizer.encode(corpus_text(REPEATED_CORPUS)[-20_000:])
    import torch

    line = induction.timeline_scores(ck.model.config, ck.snapshots, torch.tensor(val))
    best = [float(s.max()) for s in line["scores"]["induction"]]
    formed = induction.formation_step(line)
    before = max(s for s, b in zip(line["steps"], best) if b < 0.1 and s < formed)
    return formed, before, line["steps"]


def close_up_row(page) -> list[float]:
    """The 'Where does query ... look?' bars: one row of the head up close, as the browser drew it."""
    return page.evaluate(
        "() => { for (const el of document.querySelectorAll('[data-testid=stPlotlyChart] .js-plotly-plot')) {"
        "  const title = (el.layout.title && el.layout.title.text) || '';"
        "  if (title.startsWith('Where does query')) return Array.from(el._fullData[0].y); }"
        "  return null; }")


def shown_step(page) -> int:
    return int(page.locator(TIMELINE).get_attribute("aria-valuetext").split(" ")[0])


def test_sliding_the_timeline_across_the_phase_change_makes_the_stripe_appear(page, server):
    formed, early, steps = formation_and_steps()
    open_page(page, server)
    page.get_by_role("button", name=lesson.STEPS[-1].button).click()
    # the first open computes every snapshot's head scores (cached after): slow on a cold server
    page.locator("h1").filter(has_text="Attention").first.wait_for(timeout=120_000)
    wait_idle(page, timeout=180_000)
    page.get_by_text(re.compile(r"An induction head forms at step")).wait_for(timeout=120_000)
    assert page.get_by_text(re.compile(rf"An induction head forms at step {formed}")).count() == 1
    prompt = lesson.INDUCTION_PROMPT
    last, half = len(prompt) - 1, len(prompt) // 2
    target = last - half + 1  # the token after the first copy of the last token
    assert shown_step(page) == steps[-1]
    after = close_up_row(page)[target]

    thumb = page.locator(TIMELINE)
    thumb.focus()
    thumb.press("Home")  # step 0, then right up to the last step before the head shows
    wait_idle(page)
    for _ in range(2 * len(steps)):  # one step at a time, each drawn before the next (a key pressed mid-rerun can be lost)
        if shown_step(page) >= early:
            break
        thumb.press("ArrowRight")
        page.wait_for_timeout(250)
        wait_idle(page)
    assert shown_step(page) == early
    before = close_up_row(page)[target]
    assert after > 0.3 and before < after / 2, (before, after)  # the stripe is not there yet before the jump
    icl_marks = page.evaluate(
        "() => { for (const el of document.querySelectorAll('[data-testid=stPlotlyChart] .js-plotly-plot')) {"
        "  const t = el.layout.title && el.layout.title.text;"
        "  if (t === 'In-context learning') return el.layout.annotations.map(a => [a.text, a.x]); } }")
    assert ["shown", early] in icl_marks and ["induction head", formed] in icl_marks
    assert page.locator("[data-testid=stException]").count() == 0
