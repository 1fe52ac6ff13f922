"""The phase change in the app: timeline charts on the Attention page, the Repeat button, the induction preset."""

import pytest
import torch

from gptviz import detectors, induction
from gptviz.data import REPEATED_CORPUS, corpus_text
from ui import state
from ui.state import Attention

from figures import array, figure
from helpers import wait_until

SLIDER = state.timeline_widget("attention")


def open_attention(app, model: str, prompt: str):
    app.session_state[state.PROMPT] = prompt
    app.session_state[state.MODEL] = model
    app.switch_page("pages/attention.py").run()
    assert not app.exception, app.exception


def test_the_timeline_charts_show_every_heads_scores_and_the_icl_score_at_every_step(app, ckpt):
    open_attention(app, "ckpt:shakespeare-char", "ROMEO:\nWhat say you to ")
    steps = app.select_slider(key=SLIDER).options
    heads = figure(app, Attention.PHASE_HEADS)
    cfg = ckpt.model.config
    assert len(heads["data"]) == len(detectors.REGISTRY) * cfg.n_layer * cfg.n_head
    assert [str(int(x)) for x in array(heads["data"][0]["x"])] == [s.split(" ")[0] for s in steps]
    # the numbers are the engine's, for the snapshots and the final weights
    weights = {s: w for s, w in ckpt.snapshots.items()} | {int(steps[-1].split(" ")[0]): ckpt.model.state_dict()}
    text = torch.tensor(ckpt.tokenizer.encode(corpus_text("tinyshakespeare")[-20_000:]))
    line = induction.timeline_scores(cfg, weights, text)
    assert array(figure(app, Attention.PHASE_ICL)["data"][0]["y"]) == pytest.approx(line["icl"], abs=1e-3)
    assert figure(app, Attention.PHASE_LOSS)["data"]  # the loss beside it


def test_moving_the_timeline_moves_the_shown_step_on_every_chart(app):
    open_attention(app, "ckpt:shakespeare-char", "ROMEO:\nWhat say you to ")
    app.select_slider(key=SLIDER).set_value(100).run()
    assert not app.exception, app.exception
    icl = figure(app, Attention.PHASE_ICL)["layout"]["annotations"]
    assert {a["text"]: a["x"] for a in icl}["shown"] == 100
    loss = figure(app, Attention.PHASE_LOSS)["layout"]["annotations"]
    assert {a["text"]: a["x"] for a in loss if a["text"] == "shown"} == {"shown": 100}


def test_the_induction_model_marks_where_its_induction_head_formed(app):
    open_attention(app, "ckpt:induction-shakespeare-char", "We are accountedWe are accounted")
    caption = " ".join(c.value for c in app.caption)
    formed = int(caption.split("An induction head forms at step **")[1].split("**")[0])
    marks = {a["text"]: a["x"] for a in figure(app, Attention.PHASE_LOSS)["layout"]["annotations"]}
    assert marks["induction head forms"] == formed
    panel = list(detectors.REGISTRY).index("induction")  # one panel per detector, in the registry's order
    ind = [t for t in figure(app, Attention.PHASE_HEADS)["data"] if t["xaxis"] == f"x{panel + 1 if panel else ''}"]
    steps = list(array(ind[0]["x"]))
    at = steps.index(formed)
    assert max(array(t["y"])[at] for t in ind) >= detectors.DEFAULT_THRESHOLD
    assert max(array(t["y"])[at - 1] for t in ind) < detectors.DEFAULT_THRESHOLD  # the first step with one


def test_repeat_the_prompt_appends_a_copy_that_fits_the_window(app, ckpt):
    open_attention(app, "ckpt:shakespeare-char", "To be")
    app.button(key=Attention.REPEAT).click().run()
    assert not app.exception, app.exception
    assert app.session_state[state.PROMPT] == "To beTo be"
    long = corpus_text("tinyshakespeare")[:200]
    open_attention(app, "ckpt:shakespeare-char", long)
    app.button(key=Attention.REPEAT).click().run()
    half = ckpt.model.config.block_size // 2
    assert app.session_state[state.PROMPT] == long[-half:] * 2  # both copies in the model's window
    assert not [i for i in app.info if "only the last" in i.value]  # nothing had to be cut


def test_the_induction_preset_loads_its_text_and_recipe(app):
    app.switch_page("pages/train.py").run()
    app.selectbox(key=state.train_setting("preset")).set_value(induction.PRESET).run()
    assert not app.exception, app.exception
    assert app.session_state[state.CORPUS] == REPEATED_CORPUS
    for name in ("block_size", "batch_size", "learning_rate", "max_iters"):
        assert app.session_state[state.train_setting(name)] == induction.RECIPE[name], name
    assert app.session_state[state.train_setting("mlp")] is False
    assert any(i.value == induction.NOTE for i in app.info)  # what it grows and how long it took here
    assert any(f"Text: **{REPEATED_CORPUS}**" in c.value for c in app.caption)
    app.slider(key=state.train_setting("max_iters")).set_value(40).run()
    app.button(key=state.Train.START).click().run()
    runs = app.session_state[state.TAB].runs
    run = runs[max(runs)]
    assert wait_until(lambda: run.trainer.done, 120, every=0.3, before=app.run)
    assert run.corpus == REPEATED_CORPUS and run.trainer.status == "finished"
    assert run.trainer.cfg.snapshot_every == induction.RECIPE["snapshot_every"]  # the dense timeline


def test_the_data_page_offers_repeated_shakespeare(app):
    app.switch_page("pages/data.py").run()
    app.radio(key=state.CORPUS).set_value(REPEATED_CORPUS).run()
    assert not app.exception, app.exception
    metrics = {m.label: m.value for m in app.metric}
    text = corpus_text(REPEATED_CORPUS)
    assert metrics["Characters"] == f"{len(text):,}" and metrics["Vocabulary"] == "65"
