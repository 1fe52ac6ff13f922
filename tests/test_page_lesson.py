"""The lesson: the page the app opens on, and every step's button lands on the page and settings it names."""

import pytest
import torch

from gptviz import detectors
from gptviz.checkpoints import CHECKPOINT_DIR, load_checkpoint
from gptviz.data import corpus_text
from ui import lesson, state, training

from figures import figure

# the heading each page draws
TITLES = {"pages/data.py": "Data & tokens", "pages/train.py": "Train", "pages/averaging.py": "The averaging trick",
          "pages/head_steps.py": "One head, step by step", "pages/attention.py": "Attention",
          "pages/neurons.py": "MLP neurons"}


def test_the_app_opens_on_the_lesson(app):
    assert app.title[0].value == "Let's build GPT: a lesson"
    buttons = [b for b in app.button if b.key and b.key.startswith(state.Lesson.button(0)[:-1])]
    assert [b.label for b in buttons] == [s.button for s in lesson.STEPS]
    assert app.markdown[0].value == "### 👉 1. The text as numbers"  # nothing set up yet: start at the top


@pytest.mark.parametrize("n", range(len(lesson.STEPS)), ids=[s.title for s in lesson.STEPS])
def test_each_steps_button_lands_on_its_page_with_its_settings(app, n):
    step = lesson.STEPS[n]
    app.button(key=state.Lesson.button(n + 1)).click().run()
    assert not app.exception, app.exception
    assert app.title[0].value == TITLES[step.page]
    for key, value in step.settings.items():
        assert app.session_state[key] == value, key
    if state.MODEL in step.settings:
        assert app.sidebar.selectbox(key=state.MODEL).value == step.settings[state.MODEL]
    if state.PROMPT in step.settings:
        (box,) = [t for t in app.text_area if t.key.startswith("prompt_")]
        assert box.value == step.settings[state.PROMPT]
    if step.preset:
        assert app.selectbox(key=state.train_setting("preset")).value == step.preset
        for name, value in training.preset_values(step.preset).items():
            assert app.session_state[state.train_setting(name)] == value, name
    if step.head:
        shown = load_checkpoint(CHECKPOINT_DIR / f"{step.settings[state.MODEL].partition(':')[2]}.safetensors")
        text = corpus_text(shown.meta["corpus"])[-20_000:]  # the text the app measures heads on
        scores = detectors.head_scores(shown.model, tokens=torch.tensor(shown.tokenizer.encode(text)))[step.head]
        layer, head = (app.selectbox(key=k).value for k in step.head_widgets)
        assert scores[layer, head] == scores.max() >= detectors.DEFAULT_THRESHOLD  # a real one, the strongest
        query = state.HeadSteps.QUERY if step.page == "pages/head_steps.py" else state.Attention.QUERY
        assert app.session_state[query] == len(shown.tokenizer.encode(step.settings[state.PROMPT])) - 1
    app.switch_page(lesson.LESSON_PAGE).run()
    highlighted = [m.value for m in app.markdown if m.value.startswith("### 👉")]
    assert highlighted == ([f"### 👉 {n + 2}. {lesson.STEPS[n + 1].title}"] if n + 1 < len(lesson.STEPS) else [])


def test_the_projector_switch_enlarges_every_page(app):
    assert not any("zoom" in h.value for h in app.get("html"))
    app.sidebar.toggle(key=state.LARGE_TEXT).set_value(True).run()
    app.switch_page("pages/averaging.py").run()
    assert app.sidebar.toggle(key=state.LARGE_TEXT).value
    assert any("zoom: 1.3" in h.value for h in app.get("html"))


def test_the_last_step_shows_the_induction_head_and_its_phase_change(app):
    app.button(key=state.Lesson.button(len(lesson.STEPS))).click().run()
    assert not app.exception, app.exception
    assert app.session_state[state.MODEL] == lesson.INDUCTION
    assert app.selectbox(key=state.Attention.LAYER).value == 1  # the induction head sits above layer 0
    (table,) = [d.value for d in app.dataframe]  # the detector table
    rows = dict(zip(table["head"], table.to_dict("records")))
    head = f"L1 H{app.selectbox(key=state.Attention.HEAD).value}"
    assert rows[head]["induction"] >= 0.5  # the head up close is an induction head ...
    assert max(r["previous_token"] for h, r in rows.items() if h.startswith("L0")) >= 0.3  # ... fed from below
    caption = " ".join(c.value for c in app.caption)
    assert "An induction head forms at step" in caption
    marks = [a["text"] for a in figure(app, state.Attention.PHASE_LOSS)["layout"]["annotations"]]
    assert "induction head forms" in marks
