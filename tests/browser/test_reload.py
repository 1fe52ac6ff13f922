"""A reload of the tab brings its runs back, a training reattaches; other tabs, contexts and shared links get none."""

import re

from .conftest import ROOT, open_page, wait_idle
from .test_flows import model_in_picker, no_exception, picker_options, press

STEPS = 600  # long enough to be still training when the tab reloads (~12 s on a busy 2-core host)


def own_models(page) -> list[str]:
    """The runs (🧪) and opened files (📂) the picker offers this tab."""
    return [o for o in picker_options(page) if o[0] in "🧪📂"]


def live(page, pattern: str, timeout=120_000):
    """Wait for the Train page's progress line (`<run> — <status> · step k/N`) to match; return its text."""
    line = page.get_by_text(re.compile(rf" — {pattern}")).first
    line.wait_for(timeout=timeout)
    return line.inner_text()


def test_a_reload_brings_back_a_finished_and_a_running_run_and_nobody_else_sees_them(browser, server, tmp_path):
    tab_context, other_context = browser.new_context(), browser.new_context()
    try:
        page = tab_context.new_page()
        open_page(page, server, "train")
        own = tmp_path / "my-own-model.safetensors"  # a checkpoint file opened from the student's computer
        own.write_bytes((ROOT / "checkpoints" / "shakespeare-char.safetensors").read_bytes())
        page.locator("[data-testid=stSidebar] input[type=file]").set_input_files(str(own))
        wait_idle(page)
        press(page, "n_embd (embedding width)", "Home")  # 16 wide: quick
        press(page, "iterations", "Home")  # 20 steps
        page.get_by_role("button", name="Train", exact=True).click()
        live(page, r"finished · step 20/20")
        press(page, "iterations", "Home", *["ArrowRight"] * (STEPS // 20 - 1))
        press(page, "eval_interval", "End")
        page.get_by_role("button", name="Train", exact=True).click()
        live(page, rf"running · step [1-9]\d*/{STEPS}")
        settings_link = page.url
        token = page.evaluate("sessionStorage.getItem('gptviz-tab')")
        assert f"train_max_iters={STEPS}" in settings_link and len(token) == 32 and token not in settings_link
        inspected = model_in_picker(page)  # the finished run, picked when it finished

        page.reload()
        reattached = live(page, rf"running · step \d+/{STEPS}")  # the live view follows the same training
        page.get_by_role("button", name="Pause").click()
        paused = live(page, rf"paused · step \d+/{STEPS}")
        assert int(re.search(r"step (\d+)/", paused)[1]) < STEPS, (reattached, paused)
        assert len(own_models(page)) == 2  # the finished run and the opened file are back in the picker
        assert model_in_picker(page) == inspected and inspected.startswith("🧪")  # and so is the model picked
        page.get_by_role("button", name="Resume").click()
        live(page, rf"finished · step {STEPS}/{STEPS}", timeout=300_000)
        wait_idle(page)
        assert len(own_models(page)) == 3 and "🧪" in model_in_picker(page)
        no_exception(page)

        for stranger in (tab_context.new_page(), other_context.new_page()):  # a new tab; another browser
            stranger.goto(settings_link)  # the link a teacher shares
            wait_idle(stranger)
            stranger.wait_for_timeout(1000)  # time for a token, if the tab had one, to come back
            assert own_models(stranger) == [], stranger
            assert stranger.get_by_text(re.compile(r" — (running|finished) · step")).count() == 0

        picked, before = model_in_picker(page), own_models(page)
        assert picked.startswith("🧪") and picked in before
        page.get_by_role("button", name="Delete this model").click()  # the newest run, which the picker shows
        wait_idle(page)
        page.reload()
        wait_idle(page)
        page.wait_for_timeout(1000)
        assert own_models(page) == [o for o in before if o != picked]  # deleted for good, on the server
    finally:
        tab_context.close()
        other_context.close()
