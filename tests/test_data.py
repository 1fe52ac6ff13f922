import tomllib
from pathlib import Path

import pytest
import torch

from gptviz import data as D
from gptviz.errors import InputError
from gptviz.tokenizers import build


# ---------------------------------------------------------------- load_text


def test_corpora_load():
    assert D.DEFAULT_CORPUS in D.CORPORA
    for name in D.CORPORA:
        text = D.corpus_text(name)
        assert len(text) > 100_000
        assert "\ufeff" not in text and "\r" not in text
    assert D.corpus_text("wizard_of_oz").startswith("  DOROTHY")  # BOM and CRLF gone


def test_unknown_corpus_lists_names():
    with pytest.raises(InputError) as e:
        D.corpus_text("moby_dick")
    assert "tinyshakespeare" in str(e.value) and "wizard_of_oz" in str(e.value)


def test_bytes_and_paths(tmp_path):
    assert D.load_text("hi there\r\nbye\r\n".encode()) == "hi there\nbye\n"
    assert D.load_text(b"\xef\xbb\xbfhello") == "hello"
    assert D.load_text("caf\u00e9 \u6771\u4eac".encode("utf-16")) == "café 東京"  # Notepad's "Unicode"
    f = tmp_path / "t.txt"
    f.write_bytes("naïve\r\ntext".encode())
    assert D.load_text(f) == D.load_text(str(f)) == "naïve\ntext"


def refused(source, **kw) -> str:
    with pytest.raises(InputError) as e:
        D.load_text(source, **kw)
    return str(e.value)


def test_missing_path(tmp_path):
    msg = refused(tmp_path / "nope.txt")
    assert "nope.txt" in msg and "does not exist" in msg


def test_empty_and_whitespace():
    assert "empty" in refused(b"")
    assert "only spaces" in refused(b"  \n\t \r\n")


def test_binary_refused():
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(50)
    assert "PNG image, not text" in refused(png)
    assert "PDF" in refused(b"%PDF-1.7\n...")
    assert "binary" in refused(b"hello\x00world")


def test_not_utf8_says_where():
    msg = refused("caf\xe9 au lait".encode("latin-1"))
    assert "UTF-8" in msg and "position 3" in msg and "0xE9" in msg


def test_too_large(tmp_path):
    msg = refused(b"ab" * 600_000, max_bytes=1024 * 1024)
    assert "1.1 MB" in msg and "limit of 1 MB" in msg
    f = tmp_path / "big.txt"
    f.write_bytes(b"ab" * 600_000)
    assert "limit" in refused(f, max_bytes=1024 * 1024)


def test_the_apps_upload_limit_is_the_engines():
    from gptviz.limits import CHECKPOINT_MAX_BYTES

    config = tomllib.loads((Path(__file__).parent.parent / ".streamlit" / "config.toml").read_text())
    # Streamlit counts MB of 2**20 bytes; the server's limit is the largest checkpoint's, a text's is smaller
    assert config["server"]["maxUploadSize"] * D.MB == CHECKPOINT_MAX_BYTES > D.MAX_TEXT_BYTES


def test_single_character():
    assert "two different characters" in refused(b"aaaaaaaaaa")


# ---------------------------------------------------------------- TokenData

TEXT = D.corpus_text("tinyshakespeare")[:50_000]


@pytest.fixture(scope="module")
def data():
    return D.TokenData.from_text(TEXT, "char")


def test_split(data):
    assert len(data) == data.num_tokens == len(TEXT)
    assert len(data.train) == int(0.9 * len(TEXT))
    assert torch.equal(torch.cat([data.train, data.val]), data.tokens)
    assert data.tokenizer.decode(data.val[:50]) == TEXT[len(data.train):len(data.train) + 50]


def test_get_batch_shapes_and_shift(data):
    x, y = data.get_batch("train", batch_size=8, block_size=16)
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one
    windows = data.train.unfold(0, 17, 1)  # every (x, y) window of the training tokens, as rows
    for row_x, row_y in zip(x, y):
        found = (windows == torch.cat([row_x, row_y[-1:]])).all(dim=1)
        assert found.any()
    xv, yv = data.get_batch("val", 4, 32)
    assert xv.shape == (4, 32) and torch.equal(xv[:, 1:], yv[:, :-1])


def test_get_batch_deterministic(data):
    a = data.get_batch("train", 4, 8, generator=torch.Generator().manual_seed(1337))
    b = data.get_batch("train", 4, 8, generator=torch.Generator().manual_seed(1337))
    c = data.get_batch("train", 4, 8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_smallest_text_that_fits():
    d = D.TokenData.from_text("abcdefghij" * 2, "char")  # 18 train, 2 val tokens
    x, y = d.get_batch("val", 3, 1)
    assert torch.equal(x[0], d.val[:1]) and torch.equal(y[0], d.val[1:])


def test_too_short_split_refused():
    d = D.TokenData.from_text("abcdefghij" * 40, "char")  # 360 train, 40 val tokens
    with pytest.raises(InputError) as e:
        d.get_batch("val", 4, 64)
    msg = str(e.value)
    assert "block_size 64" in msg and "validation part has 40 tokens" in msg and "at least 65" in msg
    with pytest.raises(InputError):
        d.check_block_size(64)
    d.check_block_size(39)
    d.get_batch("train", 2, 64)  # the training part is long enough


def test_from_corpus_with_tokenizers():
    d = D.TokenData.from_corpus("wizard_of_oz", "gpt2")
    assert d.tokenizer.kind == "gpt2" and d.num_tokens > 40_000
    tok = build("char", D.corpus_text("wizard_of_oz"))
    d2 = D.TokenData.from_corpus("wizard_of_oz", tok, val_fraction=0.2)
    assert d2.tokenizer is tok and len(d2.val) == len(d2) - int(0.8 * len(d2))
