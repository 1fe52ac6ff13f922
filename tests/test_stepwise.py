"""One head step by step: every number the page shows is the model's own activation (engine, figures, page)."""

import json
import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from gptviz import stepwise
from gptviz.errors import ConfigError
from gptviz.model import GPT, GPTConfig
from gptviz.viz import stepwise as viz
from ui import state

from figures import array, figure

PROMPT = "ROMEO:\nWhat say you to "


def check_every_step(model, ids, queries=None, atol=1e-5):
    """Each step equals the hook the model recorded itself, for every layer, head and query."""
    _, cache = model.run_with_cache(torch.tensor([ids]))
    cfg, T = model.config, len(ids)
    for layer in range(cfg.n_layer):
        a = f"blocks.{layer}.attn"
        for head in range(cfg.n_head):
            for query in queries or range(T):
                s = stepwise.head_steps(model, cache, layer, head, query)
                torch.testing.assert_close(s.q, cache[f"{a}.q"][0, head, query], atol=atol, rtol=1e-5)
                torch.testing.assert_close(s.k, cache[f"{a}.k"][0, head], atol=atol, rtol=1e-5)
                torch.testing.assert_close(s.v, cache[f"{a}.v"][0, head], atol=atol, rtol=1e-5)
                torch.testing.assert_close(s.scaled, s.dots / math.sqrt(cfg.head_size))
                torch.testing.assert_close(s.masked, cache[f"{a}.scores"][0, head, query], atol=atol, rtol=1e-5)
                assert torch.isinf(s.masked[query + 1:]).all() and torch.isfinite(s.masked[:query + 1]).all()
                torch.testing.assert_close(s.pattern_row, cache[f"{a}.pattern"][0, head, query], atol=atol, rtol=1e-5)
                torch.testing.assert_close(s.z, cache[f"{a}.z"][0, head, query], atol=atol, rtol=1e-5)
                torch.testing.assert_close(s.attn_out, cache[f"{a}.out"][0, query], atol=atol, rtol=1e-5)
                torch.testing.assert_close(s.resid_mid, cache[f"blocks.{layer}.resid_mid"][0, query], atol=atol,
                                           rtol=1e-5)
    return s


def test_every_step_of_the_bundled_model_equals_the_next_hook(ckpt):
    ids = ckpt.tokenizer.encode(PROMPT)
    s = check_every_step(ckpt.model, ids, queries=[0, 1, len(ids) // 2, len(ids) - 1])
    assert s.shapes()["W_q"] == "(128 → 32)" and s.shapes()["W_o"] == "(128 → 128)"


@pytest.mark.parametrize("switches", [dict(bias=False, layernorm=False), dict(residual=False, n_head=1),
                                      dict(n_head=4, pos_embd=False)])
def test_every_step_holds_for_other_models_of_the_ladder(switches):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, block_size=12, n_layer=2, n_embd=16, **{"n_head": 2, **switches})).eval()
    check_every_step(model, [3, 1, 4, 1, 5, 9, 2, 6, 5, 3])


def test_the_layernormed_input_is_what_the_block_reads(ckpt):
    ids = ckpt.tokenizer.encode(PROMPT)
    _, cache = ckpt.model.run_with_cache(torch.tensor([ids]))
    s = stepwise.head_steps(ckpt.model, cache, 2, 1, 4)
    raw = (s.x - ckpt.model.blocks[2].ln_1.bias) / ckpt.model.blocks[2].ln_1.weight
    torch.testing.assert_close(raw.mean(-1), torch.zeros(len(ids)), atol=1e-4, rtol=0)
    torch.testing.assert_close(raw.std(-1, unbiased=False), torch.ones(len(ids)), atol=1e-3, rtol=0)


def test_a_bigram_or_a_wrong_choice_gets_a_message(ckpt):
    _, cache = ckpt.model.run_with_cache(torch.tensor([[1, 2, 3]]))
    with pytest.raises(ConfigError, match="no head 7"):
        stepwise.head_steps(ckpt.model, cache, 0, 7, 0)
    with pytest.raises(ConfigError, match="between 0 and 2"):
        stepwise.head_steps(ckpt.model, cache, 0, 0, 3)
    bigram = GPT(GPTConfig(vocab_size=5, n_layer=0, n_embd=8))
    with pytest.raises(ConfigError, match="bigram"):
        stepwise.check_choice(bigram, 0, 0, 0, 3)


BUILDERS = {
    "strip": lambda: viz.vector_strip(torch.randn(3, 8), list("a<&"), "x", highlight_cols=(2, 4)),
    "strip, one row": lambda: viz.vector_strip(torch.randn(8), ["q"], "q"),
    "strip, -inf": lambda: viz.vector_strip(torch.tensor([1.0, float("-inf")]), ["s"], "s"),
    "weights": lambda: viz.weights_heatmap(torch.rand(4, 4), "w"),
    "neurons": lambda: viz.neuron_bars([(5, 2.0, 1), (7, 1.0, 0)], ["a", "<b>"], chosen=7),
}


@pytest.mark.parametrize("name", BUILDERS)
def test_figures_are_what_plotly_validation_would_make_of_them(name):
    fig = BUILDERS[name]()
    checked = go.Figure(fig.to_dict())
    assert json.loads(checked.to_json()) == json.loads(fig.to_json())


def test_context_html_escapes_and_marks_the_firing_token():
    out = viz.context_html(["<", "a"], "\n", ["&"], 1.5)
    assert "&lt;a" in out and "&amp;" in out and "<b " in out and "⏎</b>" in out and "1.50" in out


# ----------------------------------------------------------------------------- the page, in a real session


@pytest.fixture
def page(app):
    app.session_state[state.PROMPT] = PROMPT
    app.switch_page("pages/head_steps.py").run()
    assert not app.exception, app.exception
    return app


def shown(at, key):
    return array(figure(at, key)["data"][0]["z"]).astype(float)


def scores_frame(at):
    (df,) = at.dataframe  # the page's one table (a styled frame carries no key)
    return df.value


def test_the_page_shows_the_models_own_numbers(page, ckpt):
    ids = ckpt.tokenizer.encode(PROMPT)
    _, cache = ckpt.model.run_with_cache(torch.tensor([ids]))
    T = len(ids)
    page.selectbox(key=state.HeadSteps.LAYER).set_value(1)
    page.selectbox(key=state.HeadSteps.HEAD).set_value(3)
    page.select_slider(key=state.HeadSteps.QUERY).set_value(6).run()
    assert not page.exception
    a = "blocks.1.attn"
    np.testing.assert_allclose(shown(page, state.HeadSteps.chart("q"))[0], cache[f"{a}.q"][0, 3, 6], atol=1e-5)
    np.testing.assert_allclose(shown(page, state.HeadSteps.chart("k")), cache[f"{a}.k"][0, 3, :7], atol=1e-5)  # visible keys only
    np.testing.assert_allclose(shown(page, state.HeadSteps.chart("v")), cache[f"{a}.v"][0, 3, :7], atol=1e-5)
    frame = scores_frame(page)
    assert len(frame) == T
    np.testing.assert_allclose(frame.iloc[:, 3], cache[f"{a}.scores"][0, 3, 6], atol=1e-5)  # -inf included
    np.testing.assert_allclose(frame.iloc[:, 4], cache[f"{a}.pattern"][0, 3, 6], atol=1e-6)
    np.testing.assert_allclose(frame.iloc[:, 2], frame.iloc[:, 1] / math.sqrt(32), atol=1e-5)
    np.testing.assert_allclose(shown(page, state.HeadSteps.chart("z"))[0], cache[f"{a}.z"][0, 3, 6], atol=1e-5)
    np.testing.assert_allclose(shown(page, state.HeadSteps.chart("concat"))[0], cache[f"{a}.z"][0, :, 6].reshape(-1), atol=1e-5)
    np.testing.assert_allclose(shown(page, state.HeadSteps.chart("proj"))[0], cache[f"{a}.out"][0, 6], atol=1e-5)
    resid = shown(page, state.HeadSteps.chart("residual"))
    np.testing.assert_allclose(resid[0], cache["blocks.1.resid_pre"][0, 6], atol=1e-5)
    np.testing.assert_allclose(resid[2], cache["blocks.1.resid_mid"][0, 6], atol=1e-5)
    assert "equals the model's own `blocks.1.attn.pattern`" in " ".join(c.value for c in page.caption)


def test_the_query_slider_and_the_step_pills(page):
    page.select_slider(key=state.HeadSteps.QUERY).set_value(2).run()
    assert shown(page, state.HeadSteps.chart("k")).shape[0] == 3  # token 2 sees tokens 0, 1, 2
    assert [m.value for m in page.markdown if m.value.startswith("#### 👉")] == [
        "#### 👉 3–6. dot products q·k, divide by √head_size, causal mask, softmax"]
    page.pills(key=state.HeadSteps.FOCUS).set_value("proj").run()
    assert [m.value for m in page.markdown if m.value.startswith("#### 👉")] == ["#### 👉 9. output projection"]
