"""The Compare page: two models, one prompt, side by side."""

import torch

from gptviz.checkpoints import save_checkpoint
from gptviz.model import GPT, preset_config

from figures import bars, figure


def test_with_one_model_it_asks_for_another(app, tmp_path, monkeypatch, ckpt):
    monkeypatch.setattr("ui.models.checkpoint_dir", lambda: tmp_path)
    save_checkpoint(tmp_path / "only.safetensors", ckpt.model, ckpt.tokenizer, {"corpus": "tinyshakespeare"})
    app.switch_page("pages/compare.py").run()
    assert any("only one model" in i.value for i in app.info) and not app.exception


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
    heatmaps = lambda key: [t for t in figure(app, key)["data"] if t["type"] == "heatmap"]  # noqa: E731
    assert len(heatmaps("compare_grid_a")) == 16 and len(heatmaps("compare_grid_b")) == 1
    _, trained = bars(app, "compare_bars_a")
    _, untrained = bars(app, "compare_bars_b")
    assert trained[0] > 0.2  # the trained model is fairly sure of the next character
    assert untrained[0] < 2 / ckpt.tokenizer.vocab_size  # the untrained one is close to a uniform guess
    names = {t["name"] for t in figure(app, "compare_loss")["data"]}
    assert any("shakespeare-char" in n for n in names)  # the trained model's curves (the other has none)
