"""The Embeddings page, run through the real app (AppTest) on the bundled checkpoint."""


import numpy as np
import torch
from torch.nn import functional as F

from gptviz.checkpoints import save_checkpoint
from gptviz.model import GPT, preset_config
from ui import models

from figures import array, figure


def points(at):
    """{token id: trace} of the token scatter."""
    out = {}
    for trace in figure(at, "embeddings_tokens_chart")["data"]:
        for i in array(trace["customdata"]).astype(int).tolist():
            out[i] = trace
    return out


PAGE = "pages/embeddings.py"  # opened by the `page` fixture (tests/conftest.py)


def test_tokens_are_points_in_2d_then_3d(page, ckpt):
    traces = figure(page, "embeddings_tokens_chart")["data"]
    assert {t["type"] for t in traces} == {"scatter"}
    assert sorted(points(page)) == list(range(65))  # one point per token of the vocabulary
    names = {t["name"] for t in traces}
    assert {"lowercase", "uppercase", "punctuation"} <= names
    lower = next(t for t in traces if t["name"] == "lowercase")
    assert "e" in lower["text"] and len(lower["text"]) == 26
    assert "% of variance" in figure(page, "embeddings_tokens_chart")["layout"]["xaxis"]["title"]["text"]
    assert any("of the embeddings' variance" in c.value for c in page.caption)

    page.radio(key="embeddings_dims").set_value(3).run()
    traces = figure(page, "embeddings_tokens_chart")["data"]
    assert {t["type"] for t in traces} == {"scatter3d"}
    assert sum(len(array(t["x"])) for t in traces) == 65
    assert all(len(array(t["z"])) == len(array(t["x"])) for t in traces)


def test_colouring_by_frequency_uses_the_corpus_counts(page, ckpt):
    by_class = {t["marker"]["color"] for t in figure(page, "embeddings_tokens_chart")["data"]}
    assert all(isinstance(c, str) for c in by_class) and len(by_class) >= 4

    page.radio(key="embeddings_colour").set_value("frequency").run()
    (trace,) = figure(page, "embeddings_tokens_chart")["data"]
    colours = array(trace["marker"]["color"]).astype(float)
    ids = array(trace["customdata"]).astype(int)
    assert len(colours) == 65
    assert ckpt.tokenizer.label(int(ids[colours.argmax()])) == "␣"  # space is the commonest character
    space, e = ckpt.tokenizer.encode(" e")
    assert colours[list(ids).index(space)] > colours[list(ids).index(e)] > colours.min()


def test_position_embeddings_similarity_is_one_on_the_diagonal(page, ckpt):
    (trace,) = figure(page, "embeddings_positions_chart")["data"]
    z = array(trace["z"]).astype(float)
    assert z.shape == (64, 64)
    np.testing.assert_allclose(np.diag(z), 1.0, atol=1e-5)
    np.testing.assert_allclose(z, z.T, atol=1e-5)
    wpe = F.normalize(ckpt.model.wpe.weight.detach(), dim=-1)
    np.testing.assert_allclose(z, (wpe @ wpe.T).numpy(), atol=1e-4)


def test_choosing_a_token_changes_its_neighbours(page, ckpt):
    tok = ckpt.tokenizer
    assert tok.label(page.selectbox(key="embeddings_token").value) == "e"
    first = figure(page, "embeddings_neighbours_chart")
    assert len(first["data"][0]["customdata"]) == 10

    page.selectbox(key="embeddings_token").set_value(tok.encode("T")[0])
    page.slider(key="embeddings_k").set_value(5).run()
    second = figure(page, "embeddings_neighbours_chart")
    labels = second["data"][0]["customdata"]
    assert len(labels) == 5 and labels != first["data"][0]["customdata"][:5]
    w = F.normalize(ckpt.model.wte.weight.detach(), dim=-1)
    sims = w @ w[tok.encode("T")[0]]
    sims[tok.encode("T")[0]] = -2
    assert labels == [tok.label(int(i)) for i in sims.topk(5).indices]
    assert "T" in second["layout"]["title"]["text"]


def test_a_model_without_positions_or_known_corpus_still_shows_its_tokens(app, tmp_path, monkeypatch, ckpt):
    torch.manual_seed(0)
    bigram = GPT(preset_config("bigram", ckpt.tokenizer.vocab_size)).eval()  # pos_embd is off
    save_checkpoint(tmp_path / "bigram.safetensors", bigram, ckpt.tokenizer, {"corpus": "my-own-text"})
    monkeypatch.setattr(models, "checkpoint_dir", lambda: tmp_path)
    app.switch_page("pages/embeddings.py").run()
    assert not app.exception
    assert sorted(points(app)) == list(range(65))
    assert "embeddings_colour" not in [r.key for r in app.radio]
    assert any("not a bundled corpus" in c.value for c in app.caption)
    assert "no learned position embeddings" in app.info[0].value
    assert not [c for c in app.get("plotly_chart") if c.proto.id.endswith("-embeddings_positions_chart")]


def test_a_bpe_model_plots_only_the_tokens_of_its_text_unless_asked(app, tmp_path, monkeypatch):
    from gptviz.data import TokenData, corpus_text

    data = TokenData.from_text(corpus_text("wizard_of_oz")[:20_000], "bpe", 300)
    torch.manual_seed(0)
    model = GPT(preset_config("bigram", data.tokenizer.vocab_size)).eval()
    save_checkpoint(tmp_path / "oz-bpe.safetensors", model, data.tokenizer, {"corpus": "wizard_of_oz"})
    monkeypatch.setattr(models, "checkpoint_dir", lambda: tmp_path)
    app.switch_page("pages/embeddings.py").run()
    assert not app.exception
    occurring = set(data.tokenizer.encode(corpus_text("wizard_of_oz")))
    assert set(points(app)) == occurring and len(occurring) < 300  # unused byte tokens are left out
    app.toggle(key="embeddings_occurring").set_value(False).run()
    assert sorted(points(app)) == list(range(300))
