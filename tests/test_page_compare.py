"""The Compare page: two models, one prompt, side by side."""

import shutil

import torch

from gptviz.checkpoints import CHECKPOINT_DIR, save_checkpoint
from gptviz.model import GPT, preset_config

from figures import bars, figure, grid_heads

PAGE = "pages/compare.py"  # opened by the `page` fixture (tests/conftest.py)


def test_with_one_model_and_no_snapshots_it_asks_for_another(app, tmp_path, monkeypatch, ckpt):
    monkeypatch.setattr("ui.models.checkpoint_dir", lambda: tmp_path)
    save_checkpoint(tmp_path / "only.safetensors", ckpt.model, ckpt.tokenizer, {"corpus": "tinyshakespeare"})
    app.switch_page("pages/compare.py").run()
    assert any("only one model" in i.value for i in app.info) and not app.exception


def test_one_model_against_itself_earlier_in_training(app, ckpt, tmp_path, monkeypatch):
    """On a fresh server the bundled model alone is enough: its final weights against a snapshot."""
    monkeypatch.setattr("ui.models.checkpoint_dir", lambda: tmp_path)  # the one model (no induction model beside it)
    shutil.copy(CHECKPOINT_DIR / "shakespeare-char.safetensors", tmp_path)
    app.switch_page("pages/compare.py").run()
    assert not app.exception
    assert app.selectbox(key="compare_a").value == app.selectbox(key="compare_b").value == "ckpt:shakespeare-char"
    steps = sorted(ckpt.snapshots)  # [0, 100, 300], and the end
    assert app.select_slider(key="compare_a_timeline").value == 800
    assert app.select_slider(key="compare_b_timeline").value == steps[1]  # halfway along the timeline
    labels = [m.value for m in app.markdown if m.value.startswith("**")]
    assert labels == ["**💾 shakespeare-char**", f"**💾 shakespeare-char at step {steps[1]}**"]

    # side B is the snapshot's weights: its heads are the snapshot model's own patterns
    prompt = app.session_state["prompt"]
    ids = torch.tensor([ckpt.tokenizer.encode(prompt)])
    early = GPT(ckpt.model.config)
    early.load_state_dict({k: v.float() for k, v in ckpt.snapshots[steps[1]].items()})
    _, cache = early.eval().run_with_cache(ids)
    heads = grid_heads(figure(app, "compare_grid_b"))  # every head of side B's grid, layer by layer
    assert torch.allclose(torch.tensor(heads[0]), cache["blocks.0.attn.pattern"][0, 0], atol=1e-4)
    for side, model in (("a", ckpt.model), ("b", early)):  # each side's bars are its own model's next token
        shown_ids, shown = bars(app, f"compare_bars_{side}")
        probs = torch.softmax(model(ids)[0][0, -1], -1)
        assert torch.allclose(torch.tensor(shown).float(), probs[shown_ids].detach(), atol=1e-4)
        assert shown_ids[0] == int(probs.argmax())
    loss = figure(app, "compare_loss")
    assert [t["name"] for t in loss["data"] if t["mode"] == "lines+markers"] == ["💾 shakespeare-char"]
    assert sorted(s["x0"] for s in loss["layout"]["shapes"] if s.get("yref") == "y domain") == [steps[1], 800]

    app.select_slider(key="compare_b_timeline").set_value(0).run()  # at step 0 every head looks evenly
    z = grid_heads(figure(app, "compare_grid_b"))[0]
    assert abs(z[-1][0] - 1 / len(z)) < 0.02


def test_two_models_side_by_side(app, tmp_path, monkeypatch, ckpt):
    monkeypatch.setattr("ui.models.checkpoint_dir", lambda: tmp_path)
    save_checkpoint(tmp_path / "shakespeare-char.safetensors", ckpt.model, ckpt.tokenizer, ckpt.meta)
    torch.manual_seed(0)
    small = GPT(preset_config("single_head", vocab_size=ckpt.tokenizer.vocab_size))
    save_checkpoint(tmp_path / "one-head.safetensors", small, ckpt.tokenizer, {"corpus": "tinyshakespeare"})
    app.switch_page("pages/compare.py").run()
    app.selectbox(key="compare_a").set_value("ckpt:shakespeare-char")
    app.selectbox(key="compare_b").set_value("ckpt:one-head").run()
    assert not app.exception
    assert len(grid_heads(figure(app, "compare_grid_a"))) == 16 and len(grid_heads(figure(app, "compare_grid_b"))) == 1
    _, trained = bars(app, "compare_bars_a")
    _, untrained = bars(app, "compare_bars_b")
    assert trained[0] > 0.2  # the trained model is fairly sure of the next character
    assert untrained[0] < 2 / ckpt.tokenizer.vocab_size  # the untrained one is close to a uniform guess
    names = {t["name"] for t in figure(app, "compare_loss")["data"]}
    assert any("shakespeare-char" in n for n in names)  # the trained model's curves (the other has none)
