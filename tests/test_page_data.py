"""The Data & tokens page in a real Streamlit session (AppTest)."""

import re

import pytest

from gptviz.data import MAX_TEXT_BYTES, corpus_text
from gptviz.tokenizers import build
from ui import state


@pytest.fixture
def app(app):
    """The Data & tokens page (the app opens on the lesson)."""
    app.switch_page("pages/data.py").run()
    assert not app.exception, app.exception
    return app


def metrics(at):
    return {m.label: m.value for m in at.metric}


def test_opens_on_tiny_shakespeare_in_characters(app):
    m = metrics(app)
    n = len(corpus_text("tinyshakespeare"))
    assert m["Characters"] == f"{n:,}" and m["Tokens"] == f"{n:,}"
    assert m["Vocabulary"] == "65" and m["Characters per token"] == "1.00"
    assert not app.exception


def test_gpt2_tokens_are_fewer_and_counted_by_the_real_ranks(app):
    app.radio(key="tokenizer_kind").set_value("gpt2").run()
    expected = len(build("gpt2").encode(corpus_text("tinyshakespeare")))
    m = metrics(app)
    assert m["Tokens"] == f"{expected:,}" and m["Vocabulary"] == "50,257"
    assert float(m["Characters per token"]) > 3


def test_bpe_replays_its_merges_one_by_one(app):
    app.radio(key="tokenizer_kind").set_value("bpe").run()
    app.slider(key="bpe_vocab").set_value(320).run()
    assert metrics(app)["Vocabulary"] == "320"
    app.text_input(key="data_replay_sentence").set_value("the king and the queen").run()
    counts = []
    for n in (0, 10, 64):
        app.slider(key="data_replay_n").set_value(n).run()
        caption = [c.value for c in app.caption if "merges." in c.value][0]
        counts.append(int(caption.split("→ ")[1].split(" tokens")[0]))
    assert counts[0] == len("the king and the queen".encode())
    assert counts[0] > counts[1] >= counts[2]
    assert any(md.value.startswith("Merge #64:") for md in app.markdown)


def test_an_uploaded_text_becomes_the_training_text(app):
    app.radio(key="corpus").set_value("upload").run()
    assert any("Upload a .txt" in i.value for i in app.info)
    text = "Once upon a time a robot learned to read. " * 50
    app.get("file_uploader")[0].upload("story.txt", text.encode("utf-8"), "text/plain")
    app.run()
    m = metrics(app)
    assert m["Characters"] == f"{len(text):,}" and int(m["Vocabulary"]) == len(set(text))
    assert any("story.txt" in c.value for c in app.caption)


def test_a_binary_upload_is_refused_and_the_previous_text_stays(app):
    app.radio(key="corpus").set_value("upload").run()
    uploader = app.get("file_uploader")[0]
    uploader.upload("notes.txt", b"good text for a tiny model " * 20, "text/plain")
    app.run()
    good = metrics(app)["Characters"]
    app.get("file_uploader")[0].set_value(("photo.txt", b"\x89PNG\r\n\x1a\n" + bytes(100), "text/plain"))
    app.run()
    assert any("PNG image" in e.value for e in app.error)
    assert metrics(app)["Characters"] == good and not app.exception


def test_a_sentence_outside_the_vocabulary_is_shown_with_replacements(app):
    app.text_input(key="data_sentence").set_value("naïve café").run()
    assert not app.exception and not app.error
    caption = [c.value for c in app.caption if "characters →" in c.value][0]
    assert caption.startswith("10 characters → 10 tokens")


def test_a_checkpoint_file_opened_in_the_sidebar_becomes_the_model(app, ckpt, tmp_path):
    from gptviz.checkpoints import to_bytes

    data = to_bytes(ckpt.model, ckpt.tokenizer, {"corpus": "tinyshakespeare"})
    app.sidebar.get("file_uploader")[0].upload("my-model.safetensors", data)
    app.run()
    assert app.sidebar.selectbox[0].value == "up:my-model" and not app.exception
    app.switch_page("pages/next_token.py").run()
    assert not app.exception and app.get("plotly_chart")


def test_a_pickle_opened_in_the_sidebar_is_refused_and_nothing_is_lost(app, ckpt, tmp_path):
    import torch

    path = tmp_path / "model.safetensors"
    torch.save(ckpt.model.state_dict(), path)  # a pickle with the right extension
    before = app.sidebar.selectbox[0].value
    app.sidebar.get("file_uploader")[0].upload("model.safetensors", path.read_bytes())
    app.run()
    assert any("pickle" in e.value for e in app.sidebar.error) and not app.exception
    assert app.sidebar.selectbox[0].value == before


@pytest.mark.parametrize("content,words", [
    (b"", "empty"),
    (b"   \n\n\t  ", "only spaces"),
    ("café au lait".encode("latin-1"), "not UTF-8"),
    (b"aaaaaaaaaaaaaaaaaaaa", "only one character"),
    (b"GIF89a" + bytes(40), "GIF image"),
    (b"ab" * (MAX_TEXT_BYTES // 2 + 1), "larger than the limit of 10 MB"),  # the browser's own check, once more
])
def test_unusable_uploads_get_a_message_for_the_student(app, content, words):
    app.radio(key="corpus").set_value("upload").run()
    app.get("file_uploader")[0].upload("mine.txt", content, "text/plain")
    app.run()
    assert any(words in e.value for e in app.error), [e.value for e in app.error]
    assert not app.exception
    assert app.sidebar.selectbox[0].value == "ckpt:shakespeare-char"  # the session keeps its models


def test_a_text_too_short_for_the_block_is_refused_when_training_starts(app):
    app.radio(key="corpus").set_value("upload").run()
    app.get("file_uploader")[0].upload("short.txt", b"To be or not to be, that is the question. " * 3, "text/plain")
    app.run()
    app.switch_page("pages/train.py").run()
    app.button(key="train_start").click().run()
    assert any("too short for block_size 64" in e.value for e in app.error)
    assert not app.session_state[state.TAB].runs and not app.exception


def replay_caption(at) -> str:
    return next(c.value for c in at.caption if "merges." in c.value)


def test_the_replay_starts_on_a_line_that_merges_at_once_and_follows_an_upload(app):
    app.radio(key="corpus").set_value("wizard_of_oz").run()
    app.radio(key="tokenizer_kind").set_value("bpe").run()
    app.slider(key="bpe_vocab").set_value(320).run()
    sentence = app.text_input(key="data_replay_sentence").value
    assert sentence in corpus_text("wizard_of_oz")
    app.slider(key="data_replay_n").set_value(5).run()
    before, after = map(int, re.findall(r"(\d+) (?:bytes|tokens)", replay_caption(app)))
    assert after <= 0.8 * before  # five merges already join a fifth of the bytes
    assert any("<0xC3><0xAF>" in c.value for c in app.caption)  # a word about byte tokens

    app.radio(key="corpus").set_value("upload").run()
    text = "Robots read books. Robots write books about robots reading books.\n" * 40
    app.get("file_uploader")[0].upload("robots.txt", text.encode("utf-8"), "text/plain")
    app.run()
    sentence = app.text_input(key="data_replay_sentence").value
    assert sentence in text  # the box shows a line of the new text, and what is shown is made from it
    n = app.slider(key="data_replay_n").value
    assert replay_caption(app).startswith(f"{len(sentence.encode())} bytes →") and f"after {n} merges" in \
        replay_caption(app)


def test_a_text_that_teaches_bpe_no_merge_says_so_instead_of_a_slider(app):
    """Found by the monkey: a replay slider from 0 to 0 raised StreamlitInvalidMinMaxError."""
    app.radio(key="corpus").set_value("upload").run()
    text = "a\n" * 50  # every chunk is one byte long: no pair to merge
    assert build("bpe", text, vocab_size=320).merges == []
    app.get("file_uploader")[0].upload("lines.txt", text.encode("utf-8"), "text/plain")
    app.run()
    app.radio(key="tokenizer_kind").set_value("bpe").run()
    assert not app.exception, app.exception
    assert any("no merge" in i.value for i in app.info)
    assert not [s for s in app.slider if s.key == "data_replay_n"]
