"""The Train page in a real Streamlit session: sliders, a real background training, saving."""

import time
from pathlib import Path

import pytest
import torch

from gptviz.checkpoints import CHECKPOINT_DIR, load_checkpoint
from gptviz.model import GPT, preset_config
from ui import state

from figures import figure
from helpers import settled, wait_until


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
    runs = at.session_state[state.TAB].runs
    return runs[max(runs)]


def poll_until(at, cond, seconds=60):
    return wait_until(cond, seconds, every=0.3, before=at.run)  # at.run: what the fragment's run_every does


def metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def test_presets_move_the_sliders(train_page):
    at = train_page
    at.selectbox(key="train_preset").set_value("bigram").run()
    assert at.slider(key="train_n_layer").value == 0 and at.select_slider(key="train_n_embd").value == 64
    assert metric(at, "Parameters") == f"{GPT(preset_config('bigram', vocab_size=65)).num_params():,}"
    at.selectbox(key="train_preset").set_value("blocks").run()
    assert at.slider(key="train_n_layer").value == 3


def test_the_sliders_take_their_bounds_and_steps_from_the_one_list_of_ranges(train_page):
    """Each slider's min, max and step are gptviz.limits.TRAIN's (passed positionally, a step became the value)."""
    from gptviz.limits import TRAIN

    for name in ("n_layer", "dropout", "max_iters", "eval_interval"):
        s, r = train_page.slider(key=f"train_{name}"), TRAIN[name]
        assert (s.min, s.max, s.step) == (r.low, r.high, r.step), name
    assert train_page.slider(key="train_max_iters").value % TRAIN["max_iters"].step == 0


def test_only_head_counts_that_divide_n_embd_are_offered(train_page):
    at = train_page
    at.select_slider(key="train_n_embd").set_value(48).run()
    assert at.select_slider(key="train_n_head").options == ["1", "2", "3", "4", "6", "8", "12", "16"]
    at.select_slider(key="train_n_head").set_value(3).run()
    at.select_slider(key="train_n_embd").set_value(64).run()  # 3 does not divide 64: falls back to 2
    assert at.select_slider(key="train_n_head").value == 2 and not at.exception


def test_the_time_estimate_counts_the_evaluations(train_page):
    def seconds():
        value = metric(train_page, "Estimated time").lstrip("~")
        return float(value.split()[0]) * (60 if value.endswith("min") else 1)

    train_page.slider(key="train_eval_interval").set_value(500).run()
    rare = seconds()
    train_page.slider(key="train_eval_interval").set_value(10).run()  # 81 evaluations instead of 3
    assert seconds() > 1.5 * rare


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
    paused_at = settled(lambda: run.trainer.step)  # the step in flight finishes, then nothing moves
    assert run.trainer.status == "paused" and paused_at is not None
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
    assert not at.session_state[state.TAB].runs and not at.exception


def test_a_learning_rate_that_blows_up_stops_with_advice_and_keeps_the_model(train_page):
    at = small(train_page, iters=400)
    at.toggle(key="train_layernorm").set_value(False).run()  # without LayerNorm a rate of 1 explodes
    at.select_slider(key="train_learning_rate").set_value(1.0).run()
    at.button(key="train_start").click().run()
    run = latest(at)
    assert poll_until(at, lambda: run.trainer.done)
    at.run()
    assert run.trainer.status == "diverged" and run.trainer.step < 400
    assert any("learning rate (1) is probably too high" in e.value and "(such as 0.3)" in e.value
               for e in at.error), [e.value for e in at.error]
    assert not at.exception
    assert at.sidebar.selectbox[0].value == f"run:{run.id}"  # the weights before the explosion: inspectable
    assert all(torch.isfinite(p).all() for p in run.trainer.model.parameters())

    at.button(key="train_retry").click().run()  # one click: the same settings, the highest rate 3x lower
    again = latest(at)
    assert again is not run and again.trainer.cfg.learning_rate == 0.1
    assert at.select_slider(key="train_learning_rate").value == 0.1
    assert again.trainer.model.config == run.trainer.model.config  # LayerNorm still off
    assert poll_until(at, lambda: again.trainer.done)
    assert again.trainer.status == "finished", again.trainer.message


@pytest.fixture
def one_training_at_a_time(monkeypatch):
    """The server-wide queue (an st.cache_resource) rebuilt with room for one training."""
    from ui import training

    monkeypatch.setenv("GPTVIZ_MAX_TRAININGS", "1")
    training.job_queue.clear()
    yield training.job_queue()
    monkeypatch.delenv("GPTVIZ_MAX_TRAININGS")
    training.job_queue.clear()


def test_trainings_beyond_the_limit_wait_and_say_how_many_are_ahead(train_page, one_training_at_a_time):
    at = small(train_page, iters=5000)
    at.select_slider(key="train_block_size").set_value(16).run()
    at.button(key="train_ladder").click().run()
    runs = list(at.session_state[state.TAB].runs.values())
    assert [r.trainer.status for r in runs[1:]] == ["queued"] * 4 and one_training_at_a_time.waiting == 4
    infos = [i.value for i in at.info]
    for ahead, r in enumerate(runs[1:]):
        assert any(f"{r.name}: queued, {ahead} ahead" in i and "trains 1 model at a time" in i for i in infos), infos
    at.button(key="train_stop").click().run()  # Stop takes the waiting ones out of the line too
    assert poll_until(at, lambda: all(r.trainer.done for r in runs))
    assert [r.trainer.status for r in runs] == ["stopped"] * 5 and one_training_at_a_time.waiting == 0
    assert [r.trainer.step for r in runs[1:]] == [0] * 4 and "Cancelled" in runs[1].trainer.message


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


def test_a_classmates_checkpoint_is_never_overwritten(tmp_path, monkeypatch):
    """Two students save under the same name: the second is refused and offered a free one."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    monkeypatch.setattr("ui.models.checkpoint_dir", lambda: tmp_path)
    sessions = []
    for _ in range(2):
        at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=90)
        at.run()
        at = small(at.switch_page("pages/train.py").run(), iters=20)
        at.button(key="train_start").click().run()
        assert poll_until(at, lambda: latest(at).trainer.done)
        at.run()
        sessions.append(at)
    a, b = sessions
    stem = "gpt-n_layer1-n_embd32-iters20"  # the run's name, "gpt · n_layer 1 · n_embd 32 · iters 20"
    assert a.text_input(key="train_save_name").value == stem
    a.button(key="train_save").click().run()
    saved = tmp_path / f"{stem}.safetensors"
    before = saved.read_bytes()

    b.run()
    b.text_input(key="train_save_name").set_value(stem).run()
    b.button(key="train_save").click().run()
    assert any(f"already a checkpoint called '{stem}'" in e.value and f"'{stem}-2'" in e.value
               for e in b.error), [e.value for e in b.error]
    assert saved.read_bytes() == before  # A's model is untouched
    b.text_input(key="train_save_name").set_value(f"{stem}-2").run()
    b.button(key="train_save").click().run()
    assert (tmp_path / f"{stem}-2.safetensors").is_file() and any("Saved" in m.value for m in b.success)

    a.button(key="train_save").click().run()  # saving one's own run again is fine
    assert any("Saved" in m.value for m in a.success) and not a.error


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


def test_the_ladder_trains_every_preset_with_one_budget(train_page):
    at = train_page
    at.slider(key="train_max_iters").set_value(40).run()
    at.slider(key="train_eval_interval").set_value(20).run()
    at.select_slider(key="train_block_size").set_value(16).run()
    at.button(key="train_ladder").click().run()
    runs = list(at.session_state[state.TAB].runs.values())
    assert [r.preset for r in runs] == ["bigram", "single_head", "multi_head", "blocks", "gpt"]
    assert len({r.batch for r in runs}) == 1
    assert poll_until(at, lambda: all(r.trainer.done for r in runs), seconds=300)
    assert all(r.trainer.cfg == runs[0].trainer.cfg for r in runs)  # equal budgets
    for r in runs:
        assert r.trainer.status == "finished" and r.trainer.model.config.block_size == 16
        assert r.trainer.history["val_loss"][-1] < r.trainer.history["val_loss"][0]
    at.run()
    names = {t["name"] for t in figure(at, "train_live_chart")["data"]}
    assert all(any(r.name in n for n in names) for r in runs)  # one curve per rung
    table = at.dataframe[0].value
    assert list(table["run"]) == [r.name for r in runs]
    assert list(table["parameters"]) == [r.trainer.model.num_params() for r in runs]


def test_two_runs_that_differ_in_n_head_are_named_for_it_everywhere_and_seeds_show_the_spread(train_page):
    at = small(train_page, iters=20)
    at.select_slider(key="train_block_size").set_value(16).run()
    names = []
    for heads in (4, 8):  # 4 is the gpt preset's own: its name leaves it out
        at.select_slider(key="train_n_head").set_value(heads).run()
        at.button(key="train_start").click().run()
        assert poll_until(at, lambda: latest(at).trainer.done)
        names.append(latest(at).name)
    assert names == ["gpt · n_layer 1 · n_embd 32 · block 16 · iters 20",
                     "gpt · n_layer 1 · n_head 8 · n_embd 32 · block 16 · iters 20"]
    at.run()
    picker = at.sidebar.selectbox[0].options
    assert all(f"🧪 {n}" in picker for n in names), picker
    assert [c.value for c in at.sidebar.caption if names[1] in c.value] == [f"🧪 {names[1]}"]  # too long to fit
    legend = [t["name"] for t in figure(at, "train_compare_chart")["data"] if t.get("showlegend", True)]
    assert legend == names  # one legend entry per run, by its name
    table = at.dataframe[0].value
    assert list(table["run"]) == names and list(table["n_head"]) == ["4", "8"]
    assert at.text_input(key="train_save_name").value == "gpt-n_layer1-n_head8-n_embd32-block16-iters20"
    runs = list(at.session_state[state.TAB].runs.values())
    colours = [r.colour for r in runs]
    assert len(set(colours)) == 2
    chart = figure(at, "train_compare_chart")["data"]
    assert [t["line"]["color"] for t in chart if t["name"] in names] == colours
    at.switch_page("pages/compare.py").run()  # the Compare page offers and draws them by the same names
    at.selectbox(key="compare_a").set_value(f"run:{runs[0].id}")
    at.selectbox(key="compare_b").set_value(f"run:{runs[1].id}").run()
    assert {f"🧪 {n}" for n in names} <= {t["name"] for t in figure(at, "compare_loss")["data"]}
    at.switch_page("pages/train.py").run()
    verdict = next(i.value for i in at.info if "→" in i.value)
    assert verdict.startswith(f"n_head 4 → 8: same parameters ({runs[0].trainer.model.num_params():,}), val loss")
    assert "one seed" in verdict

    at.button(key="train_seeds").click().run()  # the n_head-8 run again with two more seeds
    repeats = latest_batch(at)
    assert [r.trainer.cfg.seed for r in repeats] == [1338, 1339] and {r.group for r in repeats} == {runs[1].id}
    assert poll_until(at, lambda: all(r.trainer.done for r in repeats))
    at.run()
    table = at.dataframe[0].value
    assert list(table["run"]) == [names[0], f"{names[1]} · 3 seeds"]
    finals = [r.trainer.history["val_loss"][-1] for r in (runs[1], *repeats)]
    mean, spread = sum(finals) / 3, (max(finals) - min(finals)) / 2
    assert table["val loss"][1] == f"{mean:.3f} ± {spread:.3f}" and list(table["seeds"]) == [1, 3]
    band = [t for t in figure(at, "train_compare_chart")["data"] if t.get("fill") == "toself"]
    assert len(band) == 1 and max(band[0]["y"]) == pytest.approx(max(r.trainer.history["val_loss"][0]
                                                                       for r in (runs[1], *repeats)))
    verdict = next(i.value for i in at.info if "→" in i.value)
    assert "seed noise" in verdict and f"{mean:.3f} ± {spread:.3f}" in verdict, verdict
    assert not at.exception


def latest_batch(at):
    runs = list(at.session_state[state.TAB].runs.values())
    return [r for r in runs if r.batch == runs[-1].batch]


@pytest.mark.parametrize("link, setting, widget, used", [
    ({"train_n_layer": "128"}, "n_layer", "slider", 8),
    ({"train_max_iters": "1000000000"}, "max_iters", "slider", 5000),
    ({"train_n_embd": "100"}, "n_embd", "select_slider", 96),
    ({"train_dropout": "-1"}, "dropout", "slider", 0.0),
])
def test_a_link_outside_the_pages_ranges_uses_the_nearest_allowed_value_and_says_so(link, setting, widget, used):
    """Issue 21: /train?train_n_layer=128 replaced the page with Streamlit's redacted error."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=90)
    at.query_params.update(link)
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception
    assert getattr(at, widget)(key=f"train_{setting}").value == used
    assert any(f"The link's {setting}" in i.value and f"{used:g} is used" in i.value for i in at.info)


def test_a_link_value_that_is_no_number_falls_back_to_the_default():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=90)
    at.query_params.update({"train_n_layer": "many"})
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception and at.slider(key="train_n_layer").value == 4
    assert any("n_layer ('many') is not a number" in i.value for i in at.info)
