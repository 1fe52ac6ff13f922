"""The Inside-the-layers page, run through the real app (AppTest) on the bundled checkpoint."""

import re

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from gptviz import analysis
from gptviz.checkpoints import CHECKPOINT_DIR, load_checkpoint, save_checkpoint
from gptviz.model import GPT, preset_config
from ui import state

from figures import array, bars, figure, metric

PAGE, PROMPT = "pages/layers.py", "ROMEO:\nWhat say you to "  # for the `page` fixture (tests/conftest.py)


def lens_rows(at):
    """[(layer name, rank of the final answer)] from the lens chart's row labels, top to bottom."""
    ticks = figure(at, "layers_lens")["layout"]["yaxis"]["ticktext"]
    return [(m.group(1), int(m.group(2))) for m in (re.fullmatch(r"(.+?)\s+\(#(\d+)\)", t) for t in ticks)]




def session_model(at):
    return at.session_state[state.LOADED]["shakespeare-char"][1].model


def test_logit_lens_and_its_sentence(page, ckpt):
    T = len(PROMPT)
    assert page.select_slider(key="layers_position").value == T - 1
    rows = lens_rows(page)
    assert [name for name, _ in rows] == ["embed", "block 0", "block 1", "block 2", "block 3"]
    assert rows[-1][1] == 1  # the last row is the model's own answer
    first = next(i for i, (_, rank) in enumerate(rows) if rank == 1)
    sentence = next(m.value for m in page.markdown if m.value.startswith("The final answer"))
    assert (f"at **{rows[first][0]}**, before any block" if first == 0 else f"after **{rows[first][0]}**") in sentence

    # the table is the model's: compare with the lens computed here
    _, cache = ckpt.model.run_with_cache(torch.tensor([ckpt.tokenizer.encode(PROMPT)]))
    table = analysis.logit_lens_table(ckpt.model, cache, ckpt.tokenizer, position=T - 1)
    assert [r for _, r in rows] == table["answer_rank"] and first == table["first_layer_top1"]
    z_last = figure(page, "layers_lens")["data"][0]["z"]
    assert np.allclose(array(z_last), table["top_probs"], atol=1e-5)

    page.select_slider(key="layers_position").set_value(3).run()  # after 'E' of ROMEO
    assert figure(page, "layers_lens")["layout"]["title"]["text"].startswith("Logit lens at position 3:")
    table3 = analysis.logit_lens_table(ckpt.model, cache, ckpt.tokenizer, position=3)
    assert np.allclose(array(figure(page, "layers_lens")["data"][0]["z"]), table3["top_probs"], atol=1e-5)
    assert not np.allclose(table3["top_probs"], table["top_probs"])
    assert any("continues with 'O'" in c.value for c in page.caption)

    page.text_area(key="prompt_layers").input(PROMPT + "me").run()  # a new prompt: back to its last position
    assert page.select_slider(key="layers_position").value == T + 1
    assert figure(page, "layers_lens")["layout"]["title"]["text"].startswith(f"Logit lens at position {T + 1}:")


def test_residual_norms(page, ckpt):
    z = array(figure(page, "layers_norms")["data"][0]["z"])
    ids = ckpt.tokenizer.encode(PROMPT)
    assert z.shape == (5, len(ids))
    _, cache = ckpt.model.run_with_cache(torch.tensor([ids]))
    assert np.allclose(z, analysis.residual_norms(cache, 4).numpy(), rtol=1e-5)


def test_ablation_changes_the_prediction_and_leaves_no_hooks(page, ckpt):
    ids = ckpt.tokenizer.encode(PROMPT)
    clean = bars(page, "layers_bars_before")
    with torch.no_grad():
        ref = F.softmax(ckpt.model(torch.tensor([ids]))[0][0, -1], -1)
    assert np.allclose(clean[1], ref[clean[0]].numpy(), atol=1e-5)

    page.multiselect(key="layers_ablate").select("L0 H1").select("L3 H2").run()
    assert not page.exception
    kl = float(metric(page, "KL").split()[0])
    before, after = bars(page, "layers_bars_before"), bars(page, "layers_bars_after")
    assert kl > 1e-3 and (before[0], before[1].tolist()) != (after[0], after[1].tolist())
    assert np.allclose(before[1], clean[1], atol=1e-5)
    with torch.no_grad(), ckpt.model.ablate_heads([(0, 1), (3, 2)]):
        logits, loss = ckpt.model(torch.tensor([ids[:-1]]), torch.tensor([ids[1:]]))
        ablated = F.softmax(ckpt.model(torch.tensor([ids]))[0][0, -1], -1)
    assert np.allclose(after[1], ablated[after[0]].numpy(), atol=1e-5)
    assert float(metric(page, "Loss on the prompt, heads silenced")) == pytest.approx(float(loss), abs=1e-3)
    assert float(metric(page, "Loss on the prompt, all heads")) < float(loss)

    model = session_model(page)
    assert not any(p.active for p in model.hook_points().values())
    page.multiselect(key="layers_ablate").set_value([]).run()
    assert bars(page, "layers_bars_before") == (clean[0], pytest.approx(clean[1]))
    assert not [c for c in page.get("plotly_chart") if c.proto.id.endswith("-layers_bars_after")]
    # the memoised captures hold clean runs only
    for (_, _, key_ids), (logits, _) in page.session_state["captures"].items():
        with torch.no_grad():
            fresh = ckpt.model(torch.tensor([list(key_ids)]))[0]
        assert torch.allclose(logits, fresh, atol=1e-5)


def test_bigram_model(app, tmp_path, monkeypatch):
    torch.manual_seed(0)
    tok = load_checkpoint(CHECKPOINT_DIR / "shakespeare-char.safetensors").tokenizer
    model = GPT(preset_config("bigram", tok.vocab_size, block_size=32)).eval()
    save_checkpoint(tmp_path / "bigram.safetensors", model, tok, {"corpus": "tinyshakespeare"})
    monkeypatch.setattr("ui.models.checkpoint_dir", lambda: tmp_path)
    app.session_state[state.PROMPT] = PROMPT
    app.switch_page("pages/layers.py").run()
    app.selectbox(key=state.MODEL).set_value("ckpt:bigram").run()
    assert not app.exception and not app.error
    assert [name for name, _ in lens_rows(app)] == ["embed"]
    assert array(figure(app, "layers_norms")["data"][0]["z"]).shape == (1, len(PROMPT))
    assert any("bigram" in i.value and "no attention heads" in i.value for i in app.info)
    assert not app.multiselect


def lens_table(ranks, probs):
    return {"answer_label": "e", "layers": ["embed", "block 0", "block 1", "block 2"], "answer_rank": ranks,
            "answer_prob": probs, "first_layer_top1": next((i for i, r in enumerate(ranks) if r == 1), None)}


def test_the_lens_sentence_says_what_its_numbers_say():
    from ui.layers import lens_sentence

    assert "only make it surer (34% → 60%)" in lens_sentence(lens_table([3, 1, 1, 1], [0.1, 0.34, 0.5, 0.6]), 3)
    falling = lens_sentence(lens_table([3, 1, 1, 1], [0.1, 0.34, 0.5, 0.33]), 3)
    assert "surer" not in falling.replace("without making it surer", "") and "(34% → 33%)" in falling
    assert "push it down and back" in lens_sentence(lens_table([3, 1, 2, 1], [0.1, 0.34, 0.2, 0.5]), 3)
    assert "becomes #1 only after **block 2**" in lens_sentence(lens_table([3, 2, 2, 1], [0.1, 0.2, 0.3, 0.5]), 3)
