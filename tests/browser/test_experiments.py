"""An experiment a class can read, in a real browser: change n_head, retrain, compare, repeat with seeds."""

import re

from .conftest import ARTIFACTS, open_page, plotly_traces, wait_idle
from .test_flows import no_exception, picker_options, press

FIRST = "gpt · n_embd 16 · iters 20"  # the gpt preset's n_head (4) is not in its name
SECOND = "gpt · n_head 8 · n_embd 16 · iters 20"


def shot(page, locator, name):
    """A screenshot of part of the page, for the README (test-artifacts/screenshots/)."""
    (ARTIFACTS / "screenshots").mkdir(parents=True, exist_ok=True)
    locator.screenshot(path=str(ARTIFACTS / "screenshots" / f"{name}.png"))


def train_and_wait(page, name):
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text(f"{name}: Finished 20 steps").wait_for(timeout=120_000)
    wait_idle(page)


def notebook_chart(page) -> list[dict]:
    return plotly_traces(page, page.locator("[data-testid=stPlotlyChart]").count() - 1)


def test_two_runs_a_verdict_and_the_seed_spread(browser, server):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    try:
        open_page(page, server, "train")
        press(page, "n_embd (embedding width)", "Home")  # 16 wide: quick
        press(page, "iterations", "Home")  # 20 steps
        train_and_wait(page, FIRST)
        press(page, "n_head (heads per block)", "ArrowRight")  # 4 -> 8
        train_and_wait(page, SECOND)

        options = picker_options(page)
        assert f"🧪 {FIRST}" in options and f"🧪 {SECOND}" in options, options
        table = page.locator("[data-testid=stDataFrame]")
        columns = table.locator("th[role=columnheader]")  # the grid's accessible table, drawn a moment later
        columns.first.wait_for(state="attached")
        headers = columns.all_text_contents()
        assert "n_head" in [h.strip() for h in headers], headers
        verdict = page.locator("[data-testid=stAlertContentInfo]").filter(has_text="→")
        assert re.search(r"^n_head 4 → 8: same parameters \([\d,]+\), val loss \d\.\d{3} → \d\.\d{3} \([+−]?\d\.\d{3}\)",
                         verdict.inner_text(), re.M), verdict.inner_text()
        names = {t["name"] for t in notebook_chart(page)}
        assert {FIRST, SECOND} <= names, names
        with page.expect_download() as download:
            page.get_by_role("button", name="Download this model (.safetensors)").click()
        assert download.value.suggested_filename == "gpt-n_head8-n_embd16-iters20.safetensors"
        assert page.locator("input[aria-label^=Save]").input_value() == "gpt-n_head8-n_embd16-iters20"
        section = page.locator("[data-testid=stVerticalBlock]").filter(has=page.get_by_text("Compare your runs")).last
        shot(page, section, "runs-table")

        page.get_by_role("button", name="Repeat with two more seeds").click()
        page.get_by_text(f"{SECOND} · seed 1339: Finished 20 steps").wait_for(timeout=120_000)
        wait_idle(page)
        assert page.get_by_text(f"{SECOND} · 3 seeds").first.is_visible()
        assert any(t["name"] == f"{SECOND} · 3 seeds seed range" for t in notebook_chart(page))  # the band
        text = verdict.inner_text()
        assert re.search(r"\d\.\d{3} ± \d\.\d{3} \(", text) and "seed noise" in text, text
        shot(page, section, "seed-spread")
        shot(page, verdict, "verdict")
        no_exception(page)
    finally:
        context.close()


def test_a_seed_out_of_range_says_the_range(page, server):
    open_page(page, server, "train")
    box = page.locator("input[type=number][aria-label^=seed]")
    assert box.get_attribute("aria-label") == "seed (0 to 2,147,483,647)"  # the range is in plain sight
    box.fill("99999999999")
    box.press("Enter")  # Streamlit refuses it: the field turns red and keeps the old value
    page.wait_for_timeout(500)
    wait_idle(page)
    assert box.get_attribute("aria-invalid") == "true"
    assert "between 0 and 2147483647" in page.locator("[data-testid=stNumberInput]").inner_text()
    assert "train_seed=99999999999" not in page.url  # nothing was applied
    no_exception(page)
