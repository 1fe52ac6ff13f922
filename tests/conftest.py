from pathlib import Path

import pytest
import torch

from gptviz.data import TokenData, corpus_text
from gptviz.model import GPT, GPTConfig
from ui.entry import keep_navigation_mode_in_apptest

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def shakespeare_char():
    """The first 60k characters of tiny Shakespeare, char-level: enough to see learning, quick to train."""
    return TokenData.from_text(corpus_text("tinyshakespeare")[:60_000], "char")


@pytest.fixture
def small_config(shakespeare_char):
    return GPTConfig(vocab_size=shakespeare_char.tokenizer.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=32)


@pytest.fixture
def small_model(small_config):
    torch.manual_seed(0)
    return GPT(small_config).eval()


keep_navigation_mode_in_apptest()  # see ui/entry.py: the pages/ folder and st.navigation


@pytest.fixture
def app():
    """A fresh Streamlit session of the real app (AppTest runs the scripts without a browser)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=90)
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def page(app, request):
    """The page named by the test module's PAGE, opened in a fresh session, after putting the module's PROMPT
    (if it has one) in the prompt box every page shares."""
    from ui import state

    prompt = getattr(request.module, "PROMPT", None)
    if prompt is not None:
        app.session_state[state.PROMPT] = prompt
    app.switch_page(request.module.PAGE).run()
    assert not app.exception, app.exception
    return app


@pytest.fixture(scope="session")
def ckpt():
    """The bundled checkpoint the app opens on, loaded directly (what the pages should agree with)."""
    from gptviz.checkpoints import CHECKPOINT_DIR, load_checkpoint

    return load_checkpoint(CHECKPOINT_DIR / "shakespeare-char.safetensors")
