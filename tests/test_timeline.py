"""The training timeline: a slider swaps the inspected model for a snapshot of its training."""

import shutil

import numpy as np
import pytest

from figures import array, figure, grid_heads
from gptviz.checkpoints import CHECKPOINT_DIR
from ui import state


def grid(at):
    return grid_heads(figure(at, "attention_grid_chart"))


def test_attention_at_initialisation_is_uniform_and_learned_later(app):
    app.switch_page("pages/attention.py").run()
    timeline = app.select_slider(key="attention_timeline")
    assert timeline.options == ["0", "100", "300", "800 (final)"]  # the bundled model's snapshots + its end
    final = grid(app)
    timeline.set_value(0).run()
    start = grid(app)
    T = start.shape[-1]
    uniform = np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None]  # random init: every earlier token alike
    assert np.abs(start - uniform).max() < 0.05
    assert np.abs(final - uniform).max() > 0.5  # trained heads focus on a few tokens
    assert not app.exception


def test_embeddings_move_between_snapshots(app):
    app.switch_page("pages/embeddings.py").run()
    points = lambda: array(figure(app, "embeddings_tokens_chart")["data"][0]["x"])  # noqa: E731
    final = points()
    app.select_slider(key="embeddings_timeline").set_value(100).run()
    assert not np.allclose(points(), final)
    app.select_slider(key="embeddings_timeline").set_value(800).run()
    assert np.allclose(points(), final)


@pytest.fixture
def two_models(app, tmp_path, monkeypatch):
    """Two checkpoints with the bundled model's timeline, "a" and "b"."""
    for name in "ab":
        shutil.copy(CHECKPOINT_DIR / "shakespeare-char.safetensors", tmp_path / f"{name}.safetensors")
    monkeypatch.setattr("ui.models.checkpoint_dir", lambda: tmp_path)
    return app


def test_a_newly_picked_model_starts_at_its_final_step(two_models):
    app = two_models
    app.switch_page("pages/attention.py").run()
    app.selectbox(key=state.MODEL).set_value("ckpt:a").run()
    app.select_slider(key="attention_timeline").set_value(0).run()
    app.selectbox(key=state.MODEL).set_value("ckpt:b").run()
    assert app.select_slider(key="attention_timeline").value == 800  # not a's step 0
    app.select_slider(key="attention_timeline").set_value(100).run()
    app.switch_page("pages/next_token.py").run()
    assert app.select_slider(key="next_token_timeline").value == 800  # each page has its own slider
    app.switch_page("pages/attention.py").run()
    assert app.select_slider(key="attention_timeline").value == 100  # and remembers it for its model
    assert not app.exception


def test_the_timeline_keeps_the_generated_tokens(app):
    """Issue 13.6: the model at step 0 looks at the very tokens the final model wrote, and back at the end
    everything is as it was."""
    app.session_state[state.PROMPT] = "ROMEO:\nWhat say you to "
    app.switch_page("pages/attention.py").run()
    app.button(key="attention_generate").click().run()
    generated = app.session_state["attention_generated"]
    assert len(generated) == 20
    final = grid(app)
    app.select_slider(key="attention_timeline").set_value(0).run()
    assert app.session_state["attention_generated"] == generated
    start = grid(app)
    assert start.shape == final.shape  # prompt + the same 20 tokens
    T = start.shape[-1]
    assert np.abs(start - np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None]).max() < 0.05  # step 0: uniform
    app.select_slider(key="attention_timeline").set_value(800).run()
    assert app.session_state["attention_generated"] == generated
    assert np.allclose(grid(app), final)
    assert not app.exception
