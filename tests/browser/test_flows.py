"""What a student does, in a real browser: every page, an upload, a live training, two students."""

import re

from helpers import wait_until

from .conftest import ROOT, Server, open_page, plotly_traces, screenshot, wait_idle

PAGES = {"Data & tokens": "Data & tokens", "Train": "Train", "Attention": "Attention", "Embeddings": "Embeddings",
         "Next token": "Next token", "Inside the layers": "Inside the layers", "Compare": "Compare two models"}


def goto(page, name):
    """Click a sidebar link (the session stays) and wait until the new page has drawn."""
    page.get_by_role("link", name=name).click()
    page.locator("h1").filter(has_text=PAGES[name]).first.wait_for()
    wait_idle(page)


def slider(page, label):
    return page.locator(f'input[type=range][aria-label="{label}"]')


def press(page, label, *keys):
    """Move a slider with the keyboard, as a student using the arrow keys would."""
    thumb = slider(page, label)
    thumb.focus()
    for key in keys:
        thumb.press(key)
    page.wait_for_timeout(250)
    wait_idle(page)


def model_in_picker(page) -> str:
    return page.locator("[data-testid=stSidebar] input[role=combobox]").input_value()


def picker_options(page) -> list[str]:
    """Every model the picker offers: open its list, read it, close it."""
    page.locator("[data-testid=stSidebar] input[role=combobox]").click()
    options = page.get_by_role("option")
    options.first.wait_for()
    texts = options.all_inner_texts()
    page.keyboard.press("Escape")
    return texts


def no_exception(page):
    assert page.locator("[data-testid=stException]").count() == 0


def test_every_page_renders_without_an_exception(page, server):
    open_page(page, server)
    assert "shakespeare-char" in model_in_picker(page)  # the bundled model is ready at once
    for name, title in PAGES.items():
        goto(page, name)
        no_exception(page)
        assert page.locator("h1").first.inner_text().strip() == title
        screenshot(page, re.sub(r"\W+", "-", name.lower()))


def test_the_data_page_tokenizes_an_uploaded_file(page, server, tmp_path):
    text = "The little robot read every book in the library, one token at a time.\n" * 40
    upload = tmp_path / "robot.txt"
    upload.write_text(text, encoding="utf-8")
    open_page(page, server, "data")
    page.get_by_text("My own text (upload a .txt)").click()
    wait_idle(page)
    page.locator("[data-testid=stMain] input[type=file]").set_input_files(str(upload))
    wait_idle(page)
    metrics = page.locator("[data-testid=stMetric]")
    assert metrics.nth(0).inner_text().endswith(f"{len(text):,}")
    assert metrics.nth(2).inner_text().endswith(str(len(set(text))))
    assert page.get_by_text("Using robot.txt").count() == 1
    no_exception(page)


def test_training_draws_live_while_the_student_moves_sliders(page, server):
    open_page(page, server, "train")
    press(page, "n_embd (embedding width)", "Home")  # 16 wide: quick
    # 20 + 29 * 20 = 600 steps: long enough to be still running when the slider moves (a worker process
    # trains a 200-step model before the page's one-second poll has drawn it twice)
    press(page, "iterations", "Home", *["ArrowRight"] * 29)
    press(page, "eval_interval", "Home")
    page.get_by_role("button", name="Train", exact=True).click()

    def train_points():
        traces = plotly_traces(page)
        return max((t["n"] for t in traces or [] if "train" in t["name"]), default=0)

    def wait_for_points(more_than, seconds=90):
        wait_until(lambda: train_points() > more_than, seconds, every=0.5)
        return train_points()

    before = wait_for_points(0)
    press(page, "dropout", "ArrowRight")  # another widget moves mid-run
    after = wait_for_points(before)
    assert after > before > 0, (before, after)
    page.get_by_text(re.compile(r"Finished 600 steps")).wait_for(timeout=300_000)
    screenshot(page, "train-finished")
    assert model_in_picker(page) == "🧪 gpt · n_embd 16 · iters 600"

    goto(page, "Attention")
    heatmaps = [t for t in plotly_traces(page) if t["type"] == "heatmap"]
    grid = page.evaluate("() => document.querySelector('[data-testid=stPlotlyChart] .js-plotly-plot').layout.meta.grid")
    assert len(heatmaps) == 1 and (grid["n_layer"], grid["n_head"]) == (4, 4)  # one heatmap: every head of the model just trained
    no_exception(page)
    screenshot(page, "attention-after-training")


def test_a_run_that_blows_up_offers_a_lower_rate_in_one_click(page, server):
    open_page(page, server, "train")
    press(page, "n_layer (blocks)", "Home", "ArrowRight")  # 1 block
    press(page, "n_embd (embedding width)", "Home", "ArrowRight")  # 32 wide
    press(page, "iterations", "Home", *["ArrowRight"] * 9)  # 200 steps
    press(page, "learning_rate (peak)", "End")  # 1.0
    page.get_by_text("Switch parts of the model on and off").click()
    params = page.locator("[data-testid=stMetric]").filter(has_text="Parameters")
    with_layernorm = params.inner_text()
    page.get_by_text("LayerNorm", exact=True).wait_for()
    wait_idle(page)
    page.wait_for_timeout(1000)  # a switch flipped within a moment of the page's first reruns can be lost (open)
    page.get_by_text("LayerNorm", exact=True).click()  # without it a rate of 1 explodes
    # the server has the switch once the parameter count drops (LayerNorm's weights are gone)
    page.wait_for_function("([el, before]) => el.innerText !== before", arg=[params.element_handle(), with_layernorm],
                           timeout=30_000)
    wait_idle(page)
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text(re.compile(r"learning rate \(1\) is probably too high")).wait_for(timeout=120_000)
    wait_idle(page)
    page.get_by_role("button", name=re.compile("Train again at learning rate 0.1")).click()
    page.get_by_text(re.compile(r"lr 0\.1 · iters 200: Finished 200 steps")).wait_for(timeout=120_000)
    wait_idle(page)
    assert slider(page, "learning_rate (peak)").get_attribute("aria-valuetext") == "0.1"
    assert model_in_picker(page) == "🧪 gpt · n_layer 1 · n_embd 32 · LayerNorm off · lr 0.1 · iters 200"
    no_exception(page)


def test_two_students_do_not_see_each_others_runs(browser, server, tmp_path):
    a, b = browser.new_context(), browser.new_context()
    try:
        pa, pb = a.new_page(), b.new_page()
        open_page(pa, server, "train")
        open_page(pb, server, "train")
        own = tmp_path / "my-own-model.safetensors"  # student A also opens a checkpoint file of their own
        own.write_bytes((ROOT / "checkpoints" / "shakespeare-char.safetensors").read_bytes())
        pa.locator("[data-testid=stSidebar] input[type=file]").set_input_files(str(own))
        wait_idle(pa)
        press(pa, "n_embd (embedding width)", "Home")
        press(pa, "iterations", "Home")
        pa.get_by_role("button", name="Train", exact=True).click()
        pa.get_by_text(re.compile(r"Finished 20 steps")).wait_for(timeout=60_000)
        wait_idle(pa)
        assert "🧪" in model_in_picker(pa)
        mine = picker_options(pa)
        assert "🧪 gpt · n_embd 16 · iters 20" in mine and "📂 my-own-model" in mine, mine
        pb.reload()
        wait_idle(pb)
        theirs = picker_options(pb)
        assert "💾 shakespeare-char" in theirs and not any(o[0] in "🧪📂" for o in theirs), theirs
        assert pb.locator("[data-testid=stPlotlyChart]").count() == 0  # no run, no loss chart
    finally:
        a.close()
        b.close()


def test_a_shared_link_to_a_page_works_on_a_fresh_server(page):
    fresh = Server()  # its very first request is a deep link
    try:
        open_page(page, fresh, "train")
        assert page.locator("h1").first.inner_text().strip() == "Train"
        assert "shakespeare-char" in model_in_picker(page)
        no_exception(page)
    finally:
        fresh.stop()


def prompt_box(page):
    return page.locator("[data-testid=stMain] textarea").first


def type_prompt(page, text):
    prompt_box(page).fill(text)
    prompt_box(page).press("Control+Enter")
    wait_idle(page)


def click(page, name):
    page.get_by_role("button", name=name, exact=True).click()
    wait_idle(page)


def open_model_file(page, path):
    """Open a checkpoint from the sidebar and wait until the picker shows it (the upload finishes after the rerun)."""
    from playwright.sync_api import expect

    page.locator("[data-testid=stSidebar] input[type=file]").set_input_files(str(path))
    expect(page.locator("[data-testid=stSidebar] input[role=combobox]")).to_have_value(f"📂 {path.stem}",
                                                                                      timeout=60_000)
    wait_idle(page)


def no_error_at_all(page):
    no_exception(page)
    assert page.get_by_text("This app has encountered an error").count() == 0


def test_sample_one_undo_append_keeps_the_page_the_model_and_the_step(page, server, tmp_path):
    """Issue 12.1: this sequence replaced the page with Streamlit's redacted error; after a page switch the sidebar
    showed another model and the timeline had moved."""
    other = tmp_path / "another-model.safetensors"
    other.write_bytes((ROOT / "checkpoints" / "shakespeare-char.safetensors").read_bytes())
    open_page(page, server, "next_token")
    open_model_file(page, other)
    page.locator("[data-testid=stSidebar] input[role=combobox]").click()
    page.get_by_role("option", name="💾 shakespeare-char").click()
    wait_idle(page)
    press(page, "Training step (timeline)", "End", "ArrowLeft")  # step 300
    prompt = "ROMEO:\nWhat say you to "
    type_prompt(page, prompt)
    page.locator("[data-testid=stMain] input[role=combobox]").click()
    page.get_by_role("option").nth(4).click()  # a token that stays on the list after Sample one
    wait_idle(page)
    picked = page.locator("[data-testid=stMain] input[role=combobox]").input_value()
    click(page, "Sample one")
    click(page, "Undo")
    assert prompt_box(page).input_value() == prompt
    click(page, "Append")
    no_error_at_all(page)
    grown = prompt_box(page).input_value()
    assert grown.startswith(prompt) and len(grown) == len(prompt) + 1
    assert re.fullmatch(r"\w   \(id \d+\)", picked) and grown[-1] == picked[0]  # the token the list showed
    goto(page, "Attention")
    goto(page, "Next token")
    no_error_at_all(page)
    assert model_in_picker(page) == "💾 shakespeare-char"
    assert slider(page, "Training step (timeline)").get_attribute("aria-valuetext") == "300"


def test_a_prompt_longer_than_the_window_still_generates(page, server, tmp_path):
    """Issue 13.5: with block_size 32 and a 40-character prompt the Generate controls were replaced by a note."""
    import torch

    from gptviz.checkpoints import load_checkpoint, save_checkpoint
    from gptviz.model import GPT, GPTConfig

    tok = load_checkpoint(ROOT / "checkpoints" / "shakespeare-char.safetensors").tokenizer
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16))
    save_checkpoint(tmp_path / "block-32.safetensors", model, tok, {"corpus": "tinyshakespeare"})
    open_page(page, server, "attention")
    open_model_file(page, tmp_path / "block-32.safetensors")
    type_prompt(page, "ROMEO:\nWhat say you to this, my lord now")  # 40 characters
    assert page.get_by_text("so only the last 32 are used").count() == 1
    page.get_by_text("Let the model write: attention for generated tokens").click()
    click(page, "Generate 20 tokens")
    no_error_at_all(page)
    assert page.get_by_text("20 of them for the tokens it writes, so only the last 12 are used").count() == 1
    assert slider(page, "Step through the generated tokens").get_attribute("aria-valuetext") == "20"
    screenshot(page, "attention-long-prompt")
