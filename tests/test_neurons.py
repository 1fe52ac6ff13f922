"""MLP neurons: the scan's top contexts really are a neuron's highest activations over the text."""

import pytest
import torch

from gptviz import neurons
from gptviz.data import TokenData
from gptviz.errors import ConfigError
from gptviz.model import GPT, GPTConfig
from ui import models, state
from ui import neurons as scans

from figures import figure


@torch.no_grad()
def every_activation(model, tokens):
    """(layer, position, neuron) activations, one window at a time through the GELU module itself."""
    cfg, acts = model.config, []
    hooks = [b.mlp.gelu.register_forward_hook(lambda m, i, out, l=l: acts.append((l, out[0]))) for l, b in
             enumerate(model.blocks)]
    try:
        for start in range(0, len(tokens), cfg.block_size):
            model(tokens[start:start + cfg.block_size][None])
    finally:
        for h in hooks:
            h.remove()
    return torch.stack([torch.cat([a for l, a in acts if l == layer]) for layer in range(cfg.n_layer)])


def check_top(model, tokens, k):
    index = neurons.scan(model, tokens, k=k)
    every = every_activation(model, tokens)  # (n_layer, N, n_neurons)
    assert every.shape[1] == len(tokens)
    top = every.topk(k, dim=1)
    torch.testing.assert_close(index.values, top.values.transpose(1, 2), atol=1e-5, rtol=1e-5)
    for layer in range(model.config.n_layer):
        for neuron in range(0, every.shape[2], 7):
            for value, position in index.top(layer, neuron):
                assert every[layer, position, neuron] == pytest.approx(value, abs=1e-5)
    return index


def test_the_bundled_models_top_contexts_are_its_highest_activations(ckpt):
    tokens = TokenData.from_corpus("tinyshakespeare", ckpt.tokenizer).val[:1000]  # 15 full windows + a short one
    index = check_top(ckpt.model, tokens, k=5)
    (first, *_), = [neurons.contexts(index, tokens, ckpt.tokenizer, 2, 11)]
    position = index.top(2, 11)[0][1]
    assert first.token == ckpt.tokenizer.decode([int(tokens[position])])
    assert "".join(first.before) == ckpt.tokenizer.decode(tokens[max(position - position % 64, position - 30):position].tolist())


def test_a_small_model_and_a_text_shorter_than_k():
    torch.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)).eval()
    check_top(model, torch.randint(11, (100,)), k=4)
    short = neurons.scan(model, torch.tensor([1, 2, 3]), k=5)
    assert [v for v, _ in short.top(0, 0)][3:] == [float("-inf")] * 2  # only three tokens to rank


def test_the_prompts_strongest_neurons(ckpt):
    ids = torch.tensor([ckpt.tokenizer.encode("To be, or not to be")])
    _, cache = ckpt.model.run_with_cache(ids)
    hidden = cache["blocks.1.mlp.hidden"][0]
    top = neurons.prompt_neurons(cache, 1, k=5)
    assert [n for n, _, _ in top] == hidden.max(0).values.topk(5).indices.tolist()
    for n, value, position in top:
        assert hidden[position, n] == value == hidden[:, n].max()


def test_a_model_without_mlp_gets_a_message():
    with pytest.raises(ConfigError, match="no MLP"):
        neurons.check_layer(GPT(GPTConfig(vocab_size=5, n_layer=1, n_head=1, n_embd=8, mlp=False)), 0)


def test_the_fingerprint_follows_the_weights():
    torch.manual_seed(0)
    a = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=8))
    b = GPT(a.config)
    b.load_state_dict(a.state_dict())
    assert neurons.fingerprint(a) == neurons.fingerprint(b)
    with torch.no_grad():
        b.wte.weight[0, 0] += 1
    assert neurons.fingerprint(a) != neurons.fingerprint(b)


def test_the_page_shows_the_prompts_neurons_and_one_neurons_contexts(app, ckpt):
    app.session_state[state.PROMPT] = "To be, or not to be"
    app.switch_page("pages/neurons.py").run()
    assert not app.exception, app.exception
    ids = torch.tensor([ckpt.tokenizer.encode("To be, or not to be")])
    _, cache = ckpt.model.run_with_cache(ids)
    expected = [n for n, _, _ in neurons.prompt_neurons(cache, 0, k=12)]
    assert list(figure(app, "neurons_bars")["data"][0]["customdata"]) == expected
    assert app.session_state[state.Neurons.NEURON] == expected[0]
    app.number_input(key=state.Neurons.NEURON).set_value(7)
    app.selectbox(key=state.Neurons.LAYER).set_value(3).run()
    assert not app.exception
    tokens = TokenData.from_corpus("tinyshakespeare", ckpt.tokenizer).val[:neurons.MAX_TOKENS]
    index = scans.index(models.ModelEntry("ckpt", "", ckpt.model, ckpt.tokenizer, "tinyshakespeare"), tokens)
    assert index.n_tokens == len(tokens)  # the page's scan, from the cache (the scan itself is checked above)
    shown = [h.value for h in app.get("html") if "<b " in h.value]
    assert len(shown) == neurons.TOP_K
    for html, (value, _) in zip(shown, index.top(3, 7)):
        assert f"{value:6.2f}" in html
