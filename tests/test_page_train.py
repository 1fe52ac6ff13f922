"""The Train page in a real Streamlit session: sliders, a real background training, saving."""

import time

import pytest

from gptviz.checkpoints import CHECKPOINT_DIR, load_checkpoint
from gptviz.model import GPT, preset_config


@pytest.fixture
def train_page(app):
    app.switch_page("pages/train.py").run()
    assert not app.exception
    return app


def small(at, iters=40):
    at.select_slider(key="train_n_embd").set_value(32).run()
    at.slider(key="train_n_layer").set_value(1).run()
    at.slider(key="train_max_iters").set_value(iters).run()
    at.slider(key="train_eval_interval").set_value(20).run()
    return at


def latest(at):
    runs = at.session_state["runs"]
    return runs[max(runs)]


def poll_until(at, cond, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        at.run()  # what the fragment's run_every does in a browser
        if cond():
            return True
        time.sleep(0.3)
    return False


def metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def test_presets_move_the_sliders(train_page):
    at = train_page
    at.selectbox(key="train_preset").set_value("bigram").run()
    assert at.slider(key="train_n_layer").value == 0 and at.select_slider(key="train_n_embd").value == 64
    assert metric(at, "Parameters") == f"{GPT(preset_config('bigram', vocab_size=65)).num_params():,}"
    at.selectbox(key="train_preset").set_value("blocks").run()
    assert at.slider(key="train_n_layer").value == 3


def test_only_head_counts_that_divide_n_embd_are_offered(train_page):
    at = train_page
    at.select_slider(key="train_n_embd").set_value(48).run()
    assert at.select_slider(key="train_n_head").options == ["1", "2", "3", "4", "6", "8", "12", "16"]
    at.select_slider(key="train_n_head").set_value(3).run()
    at.select_slider(key="train_n_embd").set_value(64).run()  # 3 does not divide 64: falls back to 2
    assert at.select_slider(key="train_n_head").value == 2 and not at.exception


def test_training_runs_in_the_background_and_the_model_can_be_inspected(train_page):
    at = small(train_page)
    at.button(key="train_start").click().run()
    assert poll_until(at, lambda: latest(at).trainer.done)
    run = latest(at)
    h = run.trainer.history
    assert run.trainer.status == "finished" and h["eval_step"] == [0, 20, 40]
    assert h["val_loss"][-1] < h["val_loss"][0] - 0.5
    at.run()
    assert at.sidebar.selectbox[0].value == f"run:{run.id}"  # the picker switched to the new model
    chart = [c for c in at.get("plotly_chart") if "val" in c.proto.spec]
    assert chart, "the loss chart is drawn"
    assert any("Finished 40 steps" in s.value for s in at.success)


def test_moving_sliders_and_switching_pages_do_not_stop_a_run(train_page):
    at = small(train_page, iters=5000)
    at.button(key="train_start").click().run()
    run = latest(at)
    assert poll_until(at, lambda: run.trainer.step > 5)
    at.slider(key="train_dropout").set_value(0.2).run()
    at.switch_page("pages/data.py").run()
    at.switch_page("pages/train.py").run()
    step = run.trainer.step
    assert poll_until(at, lambda: run.trainer.step > step + 5)
    assert latest(at) is run and run.trainer.status == "running"
    at.button(key="train_pause").click().run()
    time.sleep(0.3)
    paused_at = run.trainer.step
    time.sleep(0.5)
    assert run.trainer.status == "paused" and run.trainer.step == paused_at
    at.button(key="train_pause").click().run()  # now labelled Resume
    assert poll_until(at, lambda: run.trainer.step > paused_at)
    at.button(key="train_stop").click().run()
    assert poll_until(at, lambda: run.trainer.done)
    assert run.trainer.status == "stopped" and "kept" in run.trainer.message


def test_a_model_too_big_for_memory_is_refused_with_numbers(train_page):
    at = train_page
    at.slider(key="train_n_layer").set_value(8).run()
    at.select_slider(key="train_n_embd").set_value(256).run()
    at.select_slider(key="train_block_size").set_value(256).run()
    at.select_slider(key="train_batch_size").set_value(64).run()
    at.button(key="train_start").click().run()
    assert any("MB" in e.value and "limit" in e.value for e in at.error)
    assert not at.session_state["runs"] and not at.exception


def test_saving_checks_the_name_and_writes_a_loadable_checkpoint(train_page):
    at = small(train_page)
    at.button(key="train_start").click().run()
    assert poll_until(at, lambda: latest(at).trainer.done)
    at.run()
    at.text_input(key="train_save_name").set_value("../outside").run()
    at.button(key="train_save").click().run()
    assert any("cannot be a checkpoint name" in e.value for e in at.error)
    name = f"test-page-train-{time.time_ns()}"
    path = CHECKPOINT_DIR / f"{name}.safetensors"
    try:
        at.text_input(key="train_save_name").set_value(name).run()
        at.button(key="train_save").click().run()
        assert path.is_file() and any("Saved" in s.value for s in at.success)
        ck = load_checkpoint(path)
        assert ck.model.config.n_embd == 32 and ck.meta["history"]["eval_step"] == [0, 20, 40]
        at.run()
        assert f"💾 {name}" in at.sidebar.selectbox[0].options
    finally:
        path.unlink(missing_ok=True)


def test_a_shared_link_restores_the_settings():
    """A teacher shares the Train page's URL: its query parameters set the sliders for every student."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=90)
    at.query_params.update({"train_n_layer": "2", "train_n_embd": "64", "train_n_head": "8",
                            "train_learning_rate": "0.001", "train_max_iters": "300", "train_mlp": "false"})
    at.run()
    at.switch_page("pages/train.py").run()
    assert at.slider(key="train_n_layer").value == 2 and at.select_slider(key="train_n_embd").value == 64
    assert at.select_slider(key="train_n_head").value == 8
    assert at.select_slider(key="train_learning_rate").value == 0.001
    assert at.slider(key="train_max_iters").value == 300 and at.toggle(key="train_mlp").value is False
    assert at.select_slider(key="train_block_size").value == 64  # not in the link: the default
    expected = GPT(preset_config("gpt", 65, n_layer=2, n_embd=64, n_head=8, mlp=False)).num_params()
    assert metric(at, "Parameters") == f"{expected:,}"
