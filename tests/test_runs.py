"""Runs in words: names, the notebook table, the verdict and seed groups (real trainers, tiny models)."""

import json
from dataclasses import replace

import plotly.graph_objects as go
import pytest

from gptviz import runs, viz
from gptviz.checkpoints import load_checkpoint, to_bytes
from gptviz.experiments import ladder_configs, run_ladder
from gptviz.model import LADDER, PRESETS, preset_config
from gptviz.train import TrainConfig, Trainer


def settings(preset="gpt", cfg=TrainConfig(), corpus="tinyshakespeare", tokenizer="char", **model):
    return runs.settings_of(preset_config(preset, 65, **model), cfg, corpus, tokenizer)


def test_a_name_is_the_preset_plus_what_differs_from_it():
    assert runs.run_name("gpt", settings()) == "gpt"
    assert runs.run_name("gpt", settings(n_head=8, block_size=32)) == "gpt · n_head 8 · block 32"
    assert runs.run_name("bigram", settings("bigram", TrainConfig(learning_rate=0.01))) == "bigram · lr 0.01"
    assert runs.run_name("gpt", settings(layernorm=False, cfg=TrainConfig(seed=7))) == "gpt · LayerNorm off · seed 7"
    assert runs.run_name("gpt", settings(corpus="wizard_of_oz", tokenizer="gpt2")) == "gpt · wizard_of_oz · gpt2 tokens"
    # how often the loss is measured changes nothing about the model: the table shows it, the name does not
    assert runs.run_name("gpt", settings(cfg=TrainConfig(eval_interval=20))) == "gpt"
    assert runs.run_name("gpt", settings(cfg=TrainConfig(seed=7)), leave_out=("seed",)) == "gpt"


def test_names_stay_apart_and_make_good_file_names():
    assert runs.unique_name("gpt", ["gpt", "gpt (2)", "bigram"]) == "gpt (3)"
    assert runs.unique_name("gpt · n_head 8", ["gpt"]) == "gpt · n_head 8"
    assert runs.file_stem("gpt · n_head 8 · block 32") == "gpt-n_head8-block32"
    assert runs.file_stem("bigram · lr 0.01 · iters 1,000") == "bigram-lr0.01-iters1000"
    assert runs.file_stem("gpt · LayerNorm off (2)") == "gpt-LayerNormoff2"


@pytest.fixture(scope="module")
def trained(shakespeare_char):
    """Tiny real runs: n_head 2 and 4 (two seeds each), and a bigram."""
    vocab = shakespeare_char.tokenizer.vocab_size
    cfg = TrainConfig(max_iters=30, eval_interval=10, eval_iters=2, batch_size=8, sample_tokens=0)
    out = {}
    for label, preset, model, seed in (("h2", "gpt", dict(n_head=2), 1), ("h2b", "gpt", dict(n_head=2), 2),
                                       ("h4", "gpt", dict(n_head=4), 1), ("h4b", "gpt", dict(n_head=4), 2),
                                       ("bigram", "bigram", {}, 1)):
        config = preset_config(preset, vocab, 16, n_layer=min(PRESETS[preset]["n_layer"], 1), n_embd=32, **model)
        t = Trainer(config, replace(cfg, seed=seed), shakespeare_char)
        t.run()
        out[label] = (t, preset, runs.settings_of(config, t.cfg, "tinyshakespeare", "char"))
    return out


def result(trained, label, group):
    t, preset, s = trained[label]
    return runs.result_of(t, runs.run_name(preset, s), preset, s, group)


def test_the_table_has_a_column_for_each_setting_that_differs(trained):
    groups = runs.group_results([result(trained, "h2", 1), result(trained, "h4", 2), result(trained, "bigram", 3)])
    rows, highlight = runs.notebook_rows(groups)
    t2, t4 = trained["h2"][0], trained["h4"][0]
    assert list(rows[0]) == ["run", "n_layer", "n_head", "positions", "MLP", "LayerNorm", "parameters",
                             "val loss", "best val loss", "seconds", "tokens/s"]
    assert [r["n_head"] for r in rows] == ["2", "4", "4"]  # the bigram keeps GPTConfig's n_head (it has no heads)
    assert highlight["n_head"] == [False, True, True] and highlight["n_layer"] == [False, False, True]
    assert rows[0]["parameters"] == t2.model.num_params() == t4.model.num_params()  # heads split n_embd
    assert rows[1]["val loss"] == f"{t4.history['val_loss'][-1]:.3f}"
    assert rows[1]["best val loss"] == f"{min(t4.history['val_loss']):.3f}"
    assert rows[0]["tokens/s"] == round(30 * 8 * 16 / t2.train_s)


def test_the_verdict_says_what_changed_and_by_how_much(trained):
    a, b = runs.group_results([result(trained, "h2", 1), result(trained, "h4", 2)])
    t2, t4 = trained["h2"][0], trained["h4"][0]
    v2, v4 = t2.history["val_loss"][-1], t4.history["val_loss"][-1]
    diff = "0.000" if round(v4 - v2, 3) == 0 else f"{v4 - v2:+.3f}".replace("-", "−")  # a real minus sign
    assert runs.verdict(a, b).startswith(
        f"n_head 2 → 4: same parameters ({t2.model.num_params():,}), val loss {v2:.3f} → {v4:.3f} ({diff}) — one seed")
    c = runs.group_results([result(trained, "bigram", 3)])[0]
    assert f"parameters {t2.model.num_params():,} → {c.first.params:,}" in runs.verdict(a, c)


def test_seed_groups_give_mean_and_range_and_the_verdict_weighs_them(trained):
    rs = [result(trained, "h2", 1), result(trained, "h2b", 1), result(trained, "h4", 2), result(trained, "h4b", 2)]
    a, b = runs.group_results(rs)
    finals = [trained[k][0].history["val_loss"][-1] for k in ("h2", "h2b")]
    assert a.name == "gpt · n_layer 1 · n_head 2 · n_embd 32 · block 16 · batch 8 · iters 30 · 2 seeds"
    assert a.val == pytest.approx(sum(finals) / 2) and a.spread == pytest.approx(abs(finals[0] - finals[1]) / 2)
    rows, _ = runs.notebook_rows([a, b])
    assert rows[0]["val loss"] == f"{a.val:.3f} ± {a.spread:.3f}" and rows[0]["seeds"] == 2
    overlap = a.low <= b.high and b.low <= a.high
    assert ("within seed noise" if overlap else "beyond seed noise") in runs.verdict(a, b)
    curve = a.curve()
    assert curve["eval_step"] == [0, 10, 20, 30]
    assert curve["val_low"] == [min(x) for x in zip(*(trained[k][0].history["val_loss"] for k in ("h2", "h2b")))]


def test_the_verdict_tells_noise_from_an_effect():
    def group(finals, n_head):
        s = settings(n_head=n_head)
        return runs.Group([runs.Result("r", "gpt", {**s, "seed": i}, 100, [], [], [0], [f], 1.0, 1.0, 1)
                           for i, f in enumerate(finals)])

    assert "within seed noise" in runs.verdict(group([2.06, 2.08], 4), group([2.07, 2.05], 8))
    assert "beyond seed noise" in runs.verdict(group([2.30, 2.32], 4), group([2.07, 2.05], 8))
    assert runs.verdict(group([2.3, 2.32], 4), group([2.07, 2.05], 8)).startswith(
        "n_head 4 → 8: same parameters (100), val loss 2.310 ± 0.010 → 2.060 ± 0.010 (−0.250)")


def test_next_seeds_skip_the_ones_used():
    assert runs.next_seeds([1337]) == [1338, 1339]
    assert runs.next_seeds([1337, 1338, 1339]) == [1340, 1341]
    assert runs.next_seeds([5, 7], 3) == [6, 8, 9]


def test_checkpoint_meta_is_one_recipe_and_survives_a_file(trained):
    t, preset, s = trained["h4"]
    meta = runs.checkpoint_meta(t, "tinyshakespeare", preset, "gpt · n_head 4", settings=s)
    ck = load_checkpoint(to_bytes(t.model, t.data.tokenizer, meta, t.snapshots))
    assert ck.meta["name"] == "gpt · n_head 4" and ck.meta["settings"]["n_head"] == 4
    assert ck.meta["history"]["val_loss"] == pytest.approx(t.history["val_loss"])
    assert ck.meta["tokens_per_sec"] == pytest.approx(30 * 8 * 16 / t.train_s)
    assert json.loads(json.dumps(meta))["train_config"]["seed"] == 1


def test_the_loss_chart_draws_a_seed_band_with_error_bars():
    run = {"name": "g", "colour": "#CC79A7", "step": [0, 1], "train_loss": [4.0, 3.0], "eval_step": [0, 10],
           "val_loss": [4.0, 3.0], "val_low": [3.9, 2.9], "val_high": [4.2, 3.05]}
    fig = viz.loss_chart([run], 65)
    band, train, val = fig.data
    assert list(band.y) == [4.2, 3.05, 2.9, 3.9] and band.fill == "toself"
    assert list(val.error_y.array) == pytest.approx([0.2, 0.05]) and list(val.error_y.arrayminus) == pytest.approx([0.1, 0.1])
    assert train.line.color == val.line.color == "#CC79A7"  # the run's own colour, whatever its position
    checked = go.Figure(fig.to_dict())  # what plotly's validation makes of it: the same figure
    assert json.loads(checked.to_json()) == json.loads(fig.to_json())


def test_the_ladder_is_one_list_of_models(shakespeare_char):
    configs = ladder_configs(65, 16)
    assert list(configs) == LADDER and all(c.block_size == 16 for c in configs.values())
    rows = run_ladder(shakespeare_char, TrainConfig(max_iters=2, eval_interval=2, eval_iters=1, batch_size=2),
                      presets=["bigram", "single_head"], block_size=8)
    assert [r["preset"] for r in rows] == ["bigram", "single_head"]
    assert rows[1]["params"] == Trainer(ladder_configs(shakespeare_char.tokenizer.vocab_size, 8)["single_head"],
                                        TrainConfig(), shakespeare_char).model.num_params()
