"""The Next token page, run through the real app (AppTest) on the bundled checkpoint."""

import html
import json
import math
import re

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from gptviz.checkpoints import save_checkpoint
from gptviz.model import GPT, GPTConfig
from gptviz.tokenizers import GPT2Tokenizer
from ui import state

from figures import bars, metric

PROMPT = "ROMEO:\nWhat say you to "  # the next character is far from certain


def probs_for(ckpt, text):
    ids = ckpt.tokenizer.encode(text)[-ckpt.model.config.block_size:]
    with torch.no_grad():
        logits, _ = ckpt.model(torch.tensor([ids]))
    return F.softmax(logits[0, -1], dim=-1)


@pytest.fixture
def page(app):
    app.session_state[state.PROMPT] = PROMPT
    app.switch_page("pages/next_token.py").run()
    assert not app.exception, app.exception
    return app


def test_bars_show_the_models_distribution(page, ckpt):
    ids, p = bars(page, "next_token_bars")
    ref = probs_for(ckpt, PROMPT)
    assert len(ids) == 20 and np.all(np.diff(p) <= 0) and p.sum() <= 1 + 1e-5
    assert ids == torch.argsort(ref, descending=True, stable=True)[:20].tolist()
    assert np.allclose(p, ref[ids].numpy(), atol=1e-5)
    entropy_bits = float(-(ref * ref.log()).sum()) / math.log(2)
    assert metric(page, "How unsure") == f"{entropy_bits:.2f} bits"
    assert metric(page, "Tokens left") == "65"


def test_sampling_settings_reshape_the_bars(page, ckpt):
    ref = probs_for(ckpt, PROMPT)
    page.slider(key="next_token_temperature").set_value(0.0).run()
    ids, p = bars(page, "next_token_bars")
    assert ids == [int(ref.argmax())] and p.tolist() == [1.0]
    assert metric(page, "How unsure") == "0.00 bits"

    page.slider(key="next_token_temperature").set_value(1.0)
    page.slider(key="next_token_top_k").set_value(3).run()
    ids, p = bars(page, "next_token_bars")
    assert ids == ref.topk(3).indices.tolist() and p.sum() == pytest.approx(1.0, abs=1e-5)
    assert metric(page, "Tokens left") == "3"

    page.slider(key="next_token_top_k").set_value(0)
    page.slider(key="next_token_top_p").set_value(0.5).run()
    ids, p = bars(page, "next_token_bars")
    nucleus = int((ref.sort(descending=True).values.cumsum(0) < 0.5).sum()) + 1  # smallest set reaching 0.5
    assert 1 < len(ids) == nucleus < 20
    assert p.sum() == pytest.approx(1.0, abs=1e-5)

    page.slider(key="next_token_top_p").set_value(1.0)
    page.slider(key="next_token_temperature").set_value(2.0).run()
    _, hot = bars(page, "next_token_bars")
    assert hot[0] < ref.max().item()  # a high temperature flattens the distribution


def test_append_then_undo(page, ckpt):
    ids, before = bars(page, "next_token_bars")
    page.button(key="next_token_append").click().run()  # the pick defaults to the most likely token
    grown = PROMPT + ckpt.tokenizer.decode([ids[0]])
    assert page.session_state[state.PROMPT] == grown
    assert page.text_area(key="prompt_next_token").value == grown
    new_ids, after = bars(page, "next_token_bars")
    assert (new_ids, after.tolist()) != (ids, before.tolist())
    assert np.allclose(after, probs_for(ckpt, grown)[new_ids].numpy(), atol=1e-5)

    page.selectbox(key="next_token_pick").set_value(new_ids[2])
    page.button(key="next_token_append").click().run()
    assert page.session_state[state.PROMPT] == grown + ckpt.tokenizer.decode([new_ids[2]])

    page.button(key="next_token_undo_button").click().run()
    page.button(key="next_token_undo_button").click().run()
    assert page.session_state[state.PROMPT] == PROMPT
    assert bars(page, "next_token_bars") == (ids, pytest.approx(before))
    assert page.button(key="next_token_undo_button").disabled


def test_clicking_a_bar_appends_its_token(page, ckpt):
    """What the browser sends when a bar is clicked (the selection of one point), replayed by hand."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    ids, _ = bars(page, "next_token_bars")
    (chart,) = [c for c in page.get("plotly_chart") if c.proto.id.endswith("-next_token_bars")]
    states = page._tree.get_widget_states()
    click = WidgetState(id=chart.proto.id)
    click.string_value = json.dumps({"selection": {"points": [{"point_index": 1, "customdata": ids[1]}],
                                                   "point_indices": [1], "box": [], "lasso": []}})
    states.widgets.append(click)
    page._run(states)
    assert not page.exception
    assert page.session_state[state.PROMPT] == PROMPT + ckpt.tokenizer.decode([ids[1]])
    page.run()  # another rerun must not append the same token again
    assert page.session_state[state.PROMPT] == PROMPT + ckpt.tokenizer.decode([ids[1]])


def test_sample_one_is_seeded(page):
    page.number_input(key="next_token_seed").set_value(7)
    page.button(key="next_token_sample_one").click().run()
    first = page.session_state[state.PROMPT]
    assert len(first) == len(PROMPT) + 1 and first.startswith(PROMPT)
    page.button(key="next_token_undo_button").click().run()
    page.button(key="next_token_sample_one").click().run()
    assert page.session_state[state.PROMPT] == first


def continuation(at):
    (el,) = at.get("html")
    m = re.fullmatch(r"<div[^>]*><span[^>]*>(.*)</span><span>(.*)</span></div>", el.proto.body, re.S)
    return html.unescape(m.group(1)), html.unescape(m.group(2))


def test_sample_200_tokens(page):
    page.button(key="next_token_sample_many").click().run()
    seen, text = continuation(page)
    assert seen == PROMPT  # in grey: what the model saw
    assert len(text) == 200
    assert re.search(r"200 tokens in [\d.]+ s \([\d,]+ tokens/s\)", " ".join(c.value for c in page.caption))
    page.button(key="next_token_sample_many").click().run()
    assert continuation(page)[1] == text  # same seed, same text
    page.number_input(key="next_token_seed").set_value(1)
    page.button(key="next_token_sample_many").click().run()
    assert continuation(page)[1] != text

    page.slider(key="next_token_temperature").set_value(0.0)
    page.button(key="next_token_sample_many").click().run()
    greedy = continuation(page)[1]
    page.number_input(key="next_token_seed").set_value(2)
    page.button(key="next_token_sample_many").click().run()
    assert continuation(page)[1] == greedy  # greedy ignores the seed


def test_unknown_characters_and_replacement(page):
    page.text_area(key="prompt_next_token").input("Thou art € fair, ü").run()
    assert not page.exception
    assert len(page.error) == 1 and "'€'" in page.error[0].value and "'ü'" in page.error[0].value
    assert not page.get("plotly_chart")
    page.checkbox(key="next_token_replace").check().run()
    assert not page.error and bars(page, "next_token_bars")[0]


def test_long_prompt_is_cropped(page, ckpt):
    text = ("To be, or not to be, that is the question. " * 5)[:200]
    page.text_area(key="prompt_next_token").input(text).run()
    assert any("200 tokens" in i.value and "64" in i.value for i in page.info)
    ids, p = bars(page, "next_token_bars")
    assert np.allclose(p, probs_for(ckpt, text)[ids].numpy(), atol=1e-5)


def test_gpt2_prompt_with_endoftext_is_plain_text(app, tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50257, block_size=32, n_layer=1, n_head=2, n_embd=16)).eval()
    save_checkpoint(tmp_path / "tiny-gpt2.safetensors", model, GPT2Tokenizer(), {"corpus": "tinyshakespeare"})
    monkeypatch.setattr("ui.models.checkpoint_dir", lambda: tmp_path)
    app.switch_page("pages/next_token.py").run()
    app.selectbox(key=state.MODEL).set_value("ckpt:tiny-gpt2").run()
    app.text_area(key="prompt_next_token").input("Hello<|endoftext|>world").run()
    assert not app.exception and not app.error
    assert not app.get("checkbox")  # replacement is only for character models
    ids, p = bars(app, "next_token_bars")
    assert len(ids) == 20 and np.all(np.diff(p) <= 0)


def test_a_bar_click_gives_the_token_of_the_bar():
    from ui.next_token import clicked_token

    assert clicked_token({"selection": {"points": [{"customdata": 42}]}}, [1, 2]) == 42
    assert clicked_token({"selection": {"points": [{"customdata": [7]}]}}, [1, 2]) == 7
    assert clicked_token({"selection": {"points": [{"point_index": 1}]}}, [5, 9]) == 9
    assert clicked_token({"selection": {"points": []}}, [5]) is None and clicked_token(None, [5]) is None


def test_append_after_sample_one_and_undo_uses_the_pick_the_browser_shows(page, ckpt):
    """Issue 12.1: the browser sends a selectbox's value back as the label it shows. After *Sample one* the
    picker showed a label made for the longer prompt; after *Undo* that label was sent with *Append*, and a
    label that held a probability matched no option any more: int('r   (2.7%)') broke the page."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    page.button(key="next_token_sample_one").click().run()
    pick = page.selectbox(key="next_token_pick")
    shown_then, label = pick.value, pick.options[pick.index]
    page.button(key="next_token_undo_button").click().run()
    assert page.session_state[state.PROMPT] == PROMPT
    assert all("%" not in o for o in page.selectbox(key="next_token_pick").options)  # labels name ids for good

    states = page._tree.get_widget_states()  # what the browser sends: the stale label, and the Append click
    (pick_state,) = [w for w in states.widgets if w.id.endswith("-next_token_pick")]
    pick_state.string_value = label
    (button,) = [b for b in page.button if b.key == "next_token_append"]
    states.widgets.append(WidgetState(id=button.id, trigger_value=True))
    page._run(states)
    assert not page.exception
    offered = torch.argsort(-probs_for(ckpt, PROMPT), stable=True)[:20].tolist()  # the picks for PROMPT
    appended = ckpt.tokenizer.decode([shown_then]) if shown_then in offered else ""  # else: ignored, not a crash
    assert page.session_state[state.PROMPT] == PROMPT + appended
    assert page.selectbox(key=state.MODEL).value == "ckpt:shakespeare-char"
