"""The Attention page, run through the real app (AppTest) on the bundled checkpoint."""

import json

import numpy as np
import pyarrow as pa
import pytest
import torch
from streamlit.proto.WidgetStates_pb2 import WidgetState

from gptviz.checkpoints import save_checkpoint
from gptviz.model import GPT, preset_config
from ui import models, state

from figures import array, figure, grid_heads, grid_ticks

PROMPT = "ROMEO:\nWhat say you to "


def patterns_for(ckpt, ids):
    _, cache = ckpt.model.run_with_cache(torch.tensor([ids]))
    return torch.stack([cache[f"blocks.{i}.attn.pattern"][0] for i in range(ckpt.model.config.n_layer)]).numpy()


def grid_heatmaps(at):
    """One {"z": pattern} per head, layer by layer (the grid is one heatmap of every head)."""
    return [{"z": z} for z in grid_heads(figure(at, "attention_grid_chart"))]


def grid_tokens(at) -> dict[int, str]:
    """{position: label} of the token labels on the grid's axis (every k-th token of a long prompt)."""
    return grid_ticks(figure(at, "attention_grid_chart"))


def grid_size(at) -> int:
    return array(grid_heatmaps(at)[0]["z"]).shape[1]


def head_chart(at):
    """(spec, {(query, key): weight}) of the enlarged head's Vega-Lite chart."""
    (el,) = at.get("vega_lite_chart")
    table = pa.ipc.open_stream(el.proto.data.data).read_all().to_pydict()  # the cells travel as an Arrow table
    cells = {(q, k): w for q, k, w in zip(table["query"], table["key"], table["weight"])}
    return json.loads(el.proto.spec), cells


def bars(at, key):
    trace = figure(at, key)["data"][0]
    return array(trace["y"]).astype(float)


@pytest.fixture
def page(app):
    app.session_state[state.PROMPT] = PROMPT
    app.switch_page("pages/attention.py").run()
    assert not app.exception, app.exception
    return app


def test_the_grid_shows_every_head_as_a_causal_pattern(page, ckpt):
    ids = ckpt.tokenizer.encode(PROMPT)
    maps = grid_heatmaps(page)
    assert len(maps) == 4 * 4
    expected = patterns_for(ckpt, ids).reshape(16, len(ids), len(ids))
    for trace, want in zip(maps, expected):
        z = array(trace["z"]).astype(float)
        assert z.shape == (len(ids), len(ids))
        np.testing.assert_allclose(z.sum(axis=1), 1.0, atol=1e-4)
        assert np.all(np.triu(z, k=1) == 0)  # no token looks at the future
        np.testing.assert_allclose(z, want, atol=1e-5)
    labels = grid_tokens(page)
    assert labels[0] == "0:R" and all(labels[i] == f"{i}:{ckpt.tokenizer.label(ids[i])}" for i in labels)
    strip = page.get("html")[0].value  # the token strip: one span per token
    assert strip.count("<span") == len(ids) and "title=\"id " in strip
    (download,) = page.get("download_button")
    assert download.proto.deferred_file_id and not download.proto.url  # the 5 MB HTML is made only on click


def test_a_new_prompt_redraws_the_grid(page):
    page.text_area(key="prompt_attention").input("To be, or not").run()
    assert not page.exception
    maps = grid_heatmaps(page)
    assert grid_tokens(page) == {i: f"{i}:{c}" for i, c in enumerate("To␣be,␣or␣not")}
    assert array(maps[5]["z"]).shape == (13, 13)
    assert page.session_state[state.PROMPT] == "To be, or not"  # shared with the other pages


def test_picking_a_head_and_a_query_updates_the_close_up(page, ckpt):
    pats = patterns_for(ckpt, ckpt.tokenizer.encode(PROMPT))
    T = pats.shape[-1]
    spec, cells = head_chart(page)
    assert cells[(T - 1, 0)] == pytest.approx(pats[0, 0, T - 1, 0], abs=1e-4)  # layer 0 head 0, last query
    assert f"datum.query === {T - 1}" in json.dumps(spec)

    page.selectbox(key="attention_layer").set_value(2)
    page.selectbox(key="attention_head").set_value(3).run()
    _, cells = head_chart(page)
    for (q, k), w in cells.items():
        assert w == pytest.approx(pats[2, 3, q, k], abs=1e-4)
    np.testing.assert_allclose(bars(page, "attention_row_chart"), pats[2, 3, T - 1], atol=1e-5)

    page.select_slider(key="attention_query").set_value(5)
    page.select_slider(key="attention_key").set_value(2).run()
    spec, _ = head_chart(page)
    assert "datum.query === 5" in json.dumps(spec) and "datum.key === 2" in json.dumps(spec)
    row = bars(page, "attention_row_chart")
    np.testing.assert_allclose(row, pats[2, 3, 5], atol=1e-5)
    assert row[6:].sum() == 0 and row.sum() == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(bars(page, "attention_column_chart"), pats[2, 3, :, 2], atol=1e-5)
    assert figure(page, "attention_row_chart")["layout"]["title"]["text"].startswith("Where does query 5:")


def test_clicking_a_cell_picks_its_query_and_key(page):
    # AppTest cannot click a chart: send the selection the browser would send for a click on row 7, column 3.
    (chart,) = page.get("vega_lite_chart")
    states = page._tree.get_widget_states()
    click = WidgetState(id=chart.proto.id, string_value=json.dumps({"selection": {"cell": [{"query": 7, "key": 3}]}}))
    states.widgets.append(click)
    page._run(states)
    assert not page.exception
    assert page.select_slider(key="attention_query").value == 7
    assert page.select_slider(key="attention_key").value == 3
    assert figure(page, "attention_row_chart")["layout"]["title"]["text"].startswith("Where does query 7:")


def test_generated_tokens_can_be_stepped_through_and_go_with_the_prompt(page, ckpt):
    T = len(ckpt.tokenizer.encode(PROMPT))
    page.number_input(key="attention_n_new").set_value(6).run()
    page.button(key="attention_generate").click().run()
    assert not page.exception
    generated = page.session_state["attention_generated"]
    assert len(generated) == 6
    assert grid_size(page) == T + 6
    assert page.select_slider(key="attention_query").value == T + 5  # the newest token asks

    page.slider(key="attention_step").set_value(2).run()
    maps = grid_heatmaps(page)
    assert grid_size(page) == T + 2
    assert page.select_slider(key="attention_query").value == T + 1
    expected = patterns_for(ckpt, ckpt.tokenizer.encode(PROMPT) + generated[:2])
    np.testing.assert_allclose(array(maps[-1]["z"]), expected[-1, -1], atol=1e-5)

    # the same seed writes the same tokens
    page.button(key="attention_generate").click().run()
    assert page.session_state["attention_generated"] == generated

    page.text_area(key="prompt_attention").input("KING:\n").run()
    assert page.session_state["attention_generated"] == []
    assert grid_size(page) == 6
    assert "attention_step" not in [s.key for s in page.slider]


def test_unknown_characters_show_a_message_and_replacement_fixes_them(page):
    page.text_area(key="prompt_attention").input("café €").run()
    assert not page.exception
    (error,) = page.error
    assert "'é'" in error.value and "'€'" in error.value
    assert not page.get("plotly_chart")
    assert page.selectbox(key=state.MODEL).value == "ckpt:shakespeare-char"  # the session carries on

    page.checkbox(key="attention_replace_unknown").check().run()
    assert not page.exception and not page.error
    assert grid_tokens(page) == dict(enumerate(["0:c", "1:a", "2:f", "3:?", "4:␣", "5:?"]))


def test_an_empty_prompt_asks_for_text(page):
    page.text_area(key="prompt_attention").input("").run()
    assert not page.exception
    assert "empty" in page.error[0].value


def test_a_bigram_model_has_no_attention_to_show(app, tmp_path, monkeypatch, ckpt):
    torch.manual_seed(0)
    bigram = GPT(preset_config("bigram", ckpt.tokenizer.vocab_size)).eval()
    save_checkpoint(tmp_path / "bigram.safetensors", bigram, ckpt.tokenizer, {"corpus": "tinyshakespeare"})
    monkeypatch.setattr(models, "checkpoint_dir", lambda: tmp_path)  # the bundled model is gone: only the bigram
    app.switch_page("pages/attention.py").run()
    assert not app.exception
    assert app.selectbox(key=state.MODEL).value == "ckpt:bigram"  # the picker fell back to a model that exists
    assert "no attention" in app.info[0].value
    assert not app.get("plotly_chart") and not app.get("vega_lite_chart")



def test_the_page_remembers_its_pickers_across_page_switches(page):
    page.selectbox(key="attention_layer").set_value(2)
    page.select_slider(key="attention_query").set_value(4)
    page.checkbox(key="attention_replace_unknown").check().run()
    page.switch_page("pages/embeddings.py").run()
    page.switch_page("pages/attention.py").run()
    assert not page.exception
    assert page.selectbox(key="attention_layer").value == 2
    assert page.select_slider(key="attention_query").value == 4
    assert page.checkbox(key="attention_replace_unknown").value is True


def test_head_detectors_badge_the_grid_and_fill_the_table(page, ckpt):
    from gptviz import detectors
    from gptviz.data import corpus_text

    (frame,) = page.dataframe  # the detector table (inside an expander)
    table = frame.value
    expected = detectors.head_scores(ckpt.model, tokens=torch.tensor(ckpt.tokenizer.encode(
        corpus_text("tinyshakespeare")[-20_000:])))
    assert list(table["head"])[:2] == ["L0 H0", "L0 H1"] and len(table) == 16
    assert list(table["previous_token"]) == [round(float(v), 2) for v in expected["previous_token"].flatten()]
    badges = detectors.label_heads(expected)
    titles = [a["text"] for a in figure(page, "attention_grid_chart")["layout"]["annotations"]]
    for (l, h), badge in badges.items():
        assert f"L{l} H{h} · {badge}" in titles
    assert badges, "the trained model has at least one recognisable head"


def test_a_click_is_read_from_every_shape_the_selection_comes_in():
    from ui.attention import clicked_cells

    assert clicked_cells({"selection": {"cell": [{"query": 7, "key": 3}]}}) == [(7, 3)]
    assert clicked_cells({"selection": {"cell": {"query": [2.0, 5], "key": [1, "4"]}}}) == [(2, 1), (5, 4)]
    assert clicked_cells({"selection": {"cell": [{"query": "x"}]}}) == []
    assert clicked_cells(None) == [] and clicked_cells({"selection": {}}) == []
