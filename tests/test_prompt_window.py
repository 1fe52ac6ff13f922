"""A prompt longer than the model's window (issue 13.5): every page that reads the prompt cuts it to its last
block_size tokens and says so in one note; the Attention page still generates, cutting a little more."""

import shutil

import pytest
import torch

from gptviz.checkpoints import CHECKPOINT_DIR, save_checkpoint
from gptviz.generate import fit_to_window, generate
from gptviz.model import GPT, GPTConfig
from ui import state

from figures import figure, grid_heads

BLOCK = 32
PROMPT = "ROMEO:\nWhat say you to this, my lord now"  # 40 characters: 8 more than the window
assert len(PROMPT) == 40


@pytest.fixture
def block_32(app, tmp_path, monkeypatch, ckpt):
    """The session inspects a model of block_size 32 (beside the bundled one, block 64); the prompt has 40 characters."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=ckpt.tokenizer.vocab_size, block_size=BLOCK, n_layer=2, n_head=2,
                          n_embd=32)).eval()
    save_checkpoint(tmp_path / "block-32.safetensors", model, ckpt.tokenizer, {"corpus": "tinyshakespeare"})
    shutil.copy(CHECKPOINT_DIR / "shakespeare-char.safetensors", tmp_path)
    monkeypatch.setattr("ui.models.checkpoint_dir", lambda: tmp_path)
    app.session_state[state.PROMPT] = PROMPT
    app.run()
    app.selectbox(key=state.MODEL).set_value("ckpt:block-32").run()
    return app, model, ckpt.tokenizer


def notes(at):
    return [i.value for i in at.info if "block_size" in i.value]


def grid_tokens(at):
    """The tokens the first head's pattern covers: its rows."""
    return grid_heads(figure(at, "attention_grid_chart"))[0]


def test_the_attention_page_cuts_the_prompt_and_still_generates(block_32):
    app, model, tok = block_32
    app.switch_page("pages/attention.py").run()
    assert not app.exception
    assert notes(app) == ["The prompt has 40 tokens; this model sees at most 32 (its block_size), "
                          "so only the last 32 are used."]
    assert len(grid_tokens(app)) == BLOCK
    n_new = app.number_input(key="attention_n_new")
    assert n_new.max == BLOCK - 1  # never a hidden control: room is made by cutting the prompt
    n_new.set_value(8).run()
    app.button(key="attention_generate").click().run()
    assert not app.exception
    context = fit_to_window(tok.encode(PROMPT), BLOCK, room=8)
    assert len(context) == 24
    generated = app.session_state["attention_generated"]
    assert generated == generate(model, context, 8, temperature=1.0, seed=1337)
    assert len(grid_tokens(app)) == BLOCK  # 24 prompt tokens + 8 new ones: one window
    assert notes(app) == ["The prompt has 40 tokens; this model sees at most 32 (its block_size), "
                          "8 of them for the tokens it writes, so only the last 24 are used."]


@pytest.mark.parametrize("page", ["next_token", "layers", "compare"])
def test_every_page_that_reads_the_prompt_cuts_it_with_the_same_note(block_32, page):
    app, _, _ = block_32
    app.switch_page(f"pages/{page}.py").run()
    assert not app.exception and not app.error
    # (on Compare for side B only: side A is the bundled model, whose window of 64 holds the prompt)
    assert notes(app) == ["The prompt has 40 tokens; this model sees at most 32 (its block_size), "
                          "so only the last 32 are used."]
