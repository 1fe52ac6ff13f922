"""The Data & tokens page in a real Streamlit session (AppTest)."""

import re

import pytest

from gptviz.data import MAX_TEXT_BYTES, corpus_text
from gptviz.tokenizers import build
from ui import state


PAGE = "pages/data.py"  # opened by the `page` fixture (tests/conftest.py); the app opens on the lesson


def metrics(at):
    return {m.label: m.value for m in at.metric}


def test_opens_on_tiny_shakespeare_in_characters(page):
    m = metrics(page)
    n = len(corpus_text("tinyshakespeare"))
    assert m["Characters"] == f"{n:,}" and m["Tokens"] == f"{n:,}"
    assert m["Vocabulary"] == "65" and m["Characters per token"] == "1.00"
    assert not page.exception


def test_gpt2_tokens_are_fewer_and_counted_by_the_real_ranks(page):
    page.radio(key="tokenizer_kind").set_value("gpt2").run()
    expected = len(build("gpt2").encode(corpus_text("tinyshakespeare")))
    m = metrics(page)
    assert m["Tokens"] == f"{expected:,}" and m["Vocabulary"] == "50,257"
    assert float(m["Characters per token"]) > 3


def test_bpe_replays_its_merges_one_by_one(page):
    page.radio(key="tokenizer_kind").set_value("bpe").run()
    page.slider(key="bpe_vocab").set_value(320).run()
    assert metrics(page)["Vocabulary"] == "320"
    page.text_input(key="data_replay_sentence").set_value("the king and the queen").run()
    counts = []
    for n in (0, 10, 64):
        page.slider(key="data_replay_n").set_value(n).run()
        caption = [c.value for c in page.caption if "merges." in c.value][0]
        counts.append(int(caption.split("→ ")[1].split(" tokens")[0]))
    assert counts[0] == len("the king and the queen".encode())
    assert counts[0] > counts[1] >= counts[2]
    assert any(md.value.startswith("Merge #64:") for md in page.markdown)


def test_an_uploaded_text_becomes_the_training_text(page):
    page.radio(key="corpus").set_value("upload").run()
    assert any("Upload a .txt" in i.value for i in page.info)
    text = "Once upon a time a robot learned to read. " * 50
    page.get("file_uploader")[0].upload("story.txt", text.encode("utf-8"), "text/plain")
    page.run()
    m = metrics(page)
    assert m["Characters"] == f"{len(text):,}" and int(m["Vocabulary"]) == len(set(text))
    assert any("story.txt" in c.value for c in page.caption)


def test_a_binary_upload_is_refused_and_the_previous_text_stays(page):
    page.radio(key="corpus").set_value("upload").run()
    uploader = page.get("file_uploader")[0]
    uploader.upload("notes.txt", b"good text for a tiny model " * 20, "text/plain")
    page.run()
    good = metrics(page)["Characters"]
    page.get("file_uploader")[0].set_value(("photo.txt", b"\x89PNG\r\n\x1a\n" + bytes(100), "text/plain"))
    page.run()
    assert any("PNG image" in e.value for e in page.error)
    assert metrics(page)["Characters"] == good and not page.exception


def test_a_sentence_outside_the_vocabulary_is_shown_with_replacements(page):
    page.text_input(key="data_sentence").set_value("naïve café").run()
    assert not page.exception and not page.error
    caption = [c.value for c in page.caption if "characters →" in c.value][0]
    assert caption.startswith("10 characters → 10 tokens")


def test_a_checkpoint_file_opened_in_the_sidebar_becomes_the_model(page, ckpt, tmp_path):
    from gptviz.checkpoints import to_bytes

    data = to_bytes(ckpt.model, ckpt.tokenizer, {"corpus": "tinyshakespeare"})
    page.sidebar.get("file_uploader")[0].upload("my-model.safetensors", data)
    page.run()
    assert page.sidebar.selectbox[0].value == "up:my-model" and not page.exception
    page.switch_page("pages/next_token.py").run()
    assert not page.exception and page.get("plotly_chart")


def test_a_pickle_opened_in_the_sidebar_is_refused_and_nothing_is_lost(page, ckpt, tmp_path):
    import torch

    path = tmp_path / "model.safetensors"
    torch.save(ckpt.model.state_dict(), path)  # a pickle with the right extension
    before = page.sidebar.selectbox[0].value
    page.sidebar.get("file_uploader")[0].upload("model.safetensors", path.read_bytes())
    page.run()
    assert any("pickle" in e.value for e in page.sidebar.error) and not page.exception
    assert page.sidebar.selectbox[0].value == before


@pytest.mark.parametrize("content,words", [
    (b"", "empty"),
    (b"   \n\n\t  ", "only spaces"),
    ("café au lait".encode("latin-1"), "not UTF-8"),
    (b"aaaaaaaaaaaaaaaaaaaa", "only one character"),
    (b"GIF89a" + bytes(40), "GIF image"),
    (b"ab" * (MAX_TEXT_BYTES // 2 + 1), "larger than the limit of 10 MB"),  # the browser's own check, once more
])
def test_unusable_uploads_get_a_message_for_the_student(page, content, words):
    page.radio(key="corpus").set_value("upload").run()
    page.get("file_uploader")[0].upload("mine.txt", content, "text/plain")
    page.run()
    assert any(words in e.value for e in page.error), [e.value for e in page.error]
    assert not page.exception
    assert page.sidebar.selectbox[0].value == "ckpt:shakespeare-char"  # the session keeps its models


def test_a_text_too_short_for_the_block_is_refused_when_training_starts(page):
    page.radio(key="corpus").set_value("upload").run()
    page.get("file_uploader")[0].upload("short.txt", b"To be or not to be, that is the question. " * 3, "text/plain")
    page.run()
    page.switch_page("pages/train.py").run()
    page.button(key="train_start").click().run()
    assert any("too short for block_size 64" in e.value for e in page.error)
    assert not page.session_state[state.TAB].runs and not page.exception


def replay_caption(at) -> str:
    return next(c.value for c in at.caption if "merges." in c.value)


def test_the_replay_starts_on_a_line_that_merges_at_once_and_follows_an_upload(page):
    page.radio(key="corpus").set_value("wizard_of_oz").run()
    page.radio(key="tokenizer_kind").set_value("bpe").run()
    page.slider(key="bpe_vocab").set_value(320).run()
    sentence = page.text_input(key="data_replay_sentence").value
    assert sentence in corpus_text("wizard_of_oz")
    page.slider(key="data_replay_n").set_value(5).run()
    before, after = map(int, re.findall(r"(\d+) (?:bytes|tokens)", replay_caption(page)))
    assert after <= 0.8 * before  # five merges already join a fifth of the bytes
    assert any("<0xC3><0xAF>" in c.value for c in page.caption)  # a word about byte tokens

    page.radio(key="corpus").set_value("upload").run()
    text = "Robots read books. Robots write books about robots reading books.\n" * 40
    page.get("file_uploader")[0].upload("robots.txt", text.encode("utf-8"), "text/plain")
    page.run()
    sentence = page.text_input(key="data_replay_sentence").value
    assert sentence in text  # the box shows a line of the new text, and what is shown is made from it
    n = page.slider(key="data_replay_n").value
    assert replay_caption(page).startswith(f"{len(sentence.encode())} bytes →") and f"after {n} merges" in \
        replay_caption(page)


def test_a_text_that_teaches_bpe_no_merge_says_so_instead_of_a_slider(page):
    """Found by the monkey: a replay slider from 0 to 0 raised StreamlitInvalidMinMaxError."""
    page.radio(key="corpus").set_value("upload").run()
    text = "a\n" * 50  # every chunk is one byte long: no pair to merge
    assert build("bpe", text, vocab_size=320).merges == []
    page.get("file_uploader")[0].upload("lines.txt", text.encode("utf-8"), "text/plain")
    page.run()
    page.radio(key="tokenizer_kind").set_value("bpe").run()
    assert not page.exception, page.exception
    assert any("no merge" in i.value for i in page.info)
    assert not [s for s in page.slider if s.key == "data_replay_n"]


def test_a_newly_registered_tokenizer_is_a_choice_here_and_named_on_the_train_page(page):
    """The README's recipe end to end: one registered class, and the Data and Train pages offer and name it."""
    from gptviz import tokenizers

    @tokenizers.register
    class Upper(tokenizers.CharTokenizer):
        kind, title = "upper", "Upper-case characters"

        @classmethod
        def build(cls, text, vocab_size=None):
            return cls("".join(sorted(set(text.upper()))))

        def encode(self, text, unknown=None):
            return super().encode(text.upper(), unknown)

        def to_dict(self):
            return {"kind": "upper", "chars": self.chars}

    try:
        page.run()  # the radio is drawn again with the registry as it is now
        radio = page.radio(key="tokenizer_kind")
        assert radio.options == ["Characters", "GPT-2 BPE (50,257 tokens)", "BPE trained on this text",
                                 "Upper-case characters"]
        radio.set_value("upper").run()
        assert not page.exception and metrics(page)["Vocabulary"] == str(len(set(corpus_text("tinyshakespeare")
                                                                                 .upper())))
        page.switch_page("pages/train.py").run()
        assert not page.exception, page.exception
        assert any("Upper-case characters" in c.value for c in page.caption)
    finally:
        del tokenizers.KINDS["upper"]
