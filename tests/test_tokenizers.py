import json

import pytest
import torch

from gptviz import tokenizers as T
from gptviz.data import corpus_text
from gptviz.errors import CheckpointError, ConfigError, GptvizError, TokenizerError

UNICODE = "naïve café — 東京 🙂"
SAMPLE = corpus_text("tinyshakespeare")[:20_000]  # a small slice keeps BPE training fast


@pytest.fixture(scope="module")
def bpe():
    return T.build("bpe", SAMPLE + UNICODE, vocab_size=400)


@pytest.fixture(scope="module")
def char():
    return T.build("char", SAMPLE)


@pytest.fixture(scope="module")
def gpt2():
    return T.build("gpt2")


# ---------------------------------------------------------------- shared interface


def test_round_trips(char, gpt2, bpe):
    text = SAMPLE[:2000]
    for tok in (char, gpt2, bpe):
        ids = tok.encode(text)
        assert all(isinstance(i, int) and 0 <= i < tok.vocab_size for i in ids)
        assert tok.decode(ids) == text
        assert tok.decode(torch.tensor(ids)) == text  # a 1-D tensor works too
    for tok in (gpt2, bpe):  # byte-level: any text
        assert tok.decode(tok.encode(UNICODE)) == UNICODE
        assert tok.encode("") == []


def test_kinds_and_sizes(char, gpt2, bpe):
    assert (char.kind, gpt2.kind, bpe.kind) == ("char", "gpt2", "bpe")
    assert char.vocab_size == len(set(SAMPLE))
    assert gpt2.vocab_size == 50257
    assert bpe.vocab_size == 400


def test_unknown_kind_lists_valid_ones():
    with pytest.raises(GptvizError) as e:
        T.build("word")
    assert "char" in str(e.value) and "gpt2" in str(e.value) and "bpe" in str(e.value)


def test_labels_show_whitespace(char, gpt2, bpe):
    assert char.label(char.encode(" ")[0]) == "␣"
    assert char.label(char.encode("\n")[0]) == "⏎"
    assert char.label(char.encode("a")[0]) == "a"
    assert gpt2.label(198) == "⏎"  # GPT-2's "\n"
    assert gpt2.label(gpt2.encode(" world")[0]) == "␣world"
    assert gpt2.label(gpt2.encode("\t")[0]) == "⇥"
    assert bpe.label(ord("\t")) == "⇥"
    assert bpe.label(0xE2) == "<0xE2>"  # half a UTF-8 character shows its byte
    assert gpt2.label(50256) == "<|endoftext|>"
    for tok in (char, gpt2, bpe):
        labels = tok.labels()
        assert len(labels) == tok.vocab_size and all(isinstance(s, str) and s for s in labels)
        assert tok.labels() is labels  # cached


def test_to_dict_from_dict_round_trip(char, gpt2, bpe):
    text = SAMPLE[-3000:]
    for tok in (char, gpt2, bpe):
        d = json.loads(json.dumps(tok.to_dict()))
        again = T.from_dict(d)
        assert again.kind == tok.kind and again.vocab_size == tok.vocab_size
        assert again.encode(text) == tok.encode(text)
        assert again.labels() == tok.labels()
    assert gpt2.to_dict() == {"kind": "gpt2"}
    assert T.from_dict(json.loads(json.dumps(bpe.to_dict()))).merges == bpe.merges


@pytest.mark.parametrize("bad", [
    None, [], {}, {"kind": "word"}, {"kind": "char"}, {"kind": "char", "chars": ""},
    {"kind": "char", "chars": "aab"}, {"kind": "bpe"}, {"kind": "bpe", "merges": "nope"},
    {"kind": "bpe", "merges": [[1]]}, {"kind": "bpe", "merges": [[1, 300]]},
    {"kind": "bpe", "merges": [[-1, 2]]}, {"kind": "bpe", "merges": [[104, 105], [104, 105]]},
    {"kind": "bpe", "merges": [["a", "b"]]},
])
def test_malformed_dict_refused(bad):
    with pytest.raises(CheckpointError) as e:
        T.from_dict(bad)
    assert "tokenizer" in str(e.value)


# ---------------------------------------------------------------- char


def test_char_is_sorted_distinct_chars():
    tok = T.build("char", "hello world")
    assert tok.chars == " dehlorw"
    assert tok.encode("hello") == [3, 2, 4, 4, 5]


def test_char_unknown_characters_named(char):
    with pytest.raises(TokenizerError) as e:
        char.encode("café 10 €, é")
    msg = str(e.value)
    assert "'é'" in msg and "'€'" in msg and "never saw" in msg and "replacement" in msg
    assert "'c'" not in msg


def test_char_replace_mode(char):
    ids = char.encode("café!", unknown="replace")
    assert char.decode(ids) == "caf?!"  # '?' is in Shakespeare's characters
    tok = T.CharTokenizer.from_text("abc ", unknown="replace")
    assert tok.decode(tok.encode("abé")) == "ab "  # no '?': falls back to the space


def test_char_encode_of_the_whole_corpus(char):  # its speed: `python -m gptviz bench`
    text = corpus_text("tinyshakespeare")
    tok = T.build("char", text)
    ids = tok.encode(text)
    assert len(ids) == len(text) and tok.decode(ids) == text


# ---------------------------------------------------------------- gpt2


def test_gpt2_known_ids(gpt2):
    assert gpt2.encode("hello world") == [31373, 995]
    assert gpt2.decode([31373, 995]) == "hello world"


def test_gpt2_endoftext_is_ordinary_text(gpt2):
    ids = gpt2.encode("a<|endoftext|>b")
    assert 50256 not in ids and len(ids) > 3
    assert gpt2.decode(ids) == "a<|endoftext|>b"


def test_decode_ids_outside_vocab_does_not_crash(gpt2, char):
    # a model may pad its vocabulary (50257 -> 50304); an untrained one can sample those ids
    assert gpt2.decode([31373, 50300]) == "hello�"
    assert char.decode([char.vocab_size]) == "�"
    assert gpt2.label(50300).startswith("<unused")


# ---------------------------------------------------------------- bpe


def test_bpe_merges_ordered_and_replayable(bpe):
    assert len(bpe.merges) == bpe.vocab_size - 256
    for i, (a, b) in enumerate(bpe.merges):
        assert a < 256 + i and b < 256 + i  # a merge only uses tokens that exist before it
    byte_strings = [bpe.token_bytes(i) for i in range(bpe.vocab_size)]
    assert len(set(byte_strings)) == bpe.vocab_size  # unique, as tiktoken needs


def test_bpe_replay(bpe):
    text = corpus_text("tinyshakespeare")[-4000:] + "\n" + UNICODE + " aaaaaaa ababab"
    assert bpe.replay(text) == bpe.encode(text)
    assert bpe.replay(text, len(bpe.merges)) == bpe.encode(text)
    assert bpe.replay(text, 0) == list(text.encode("utf-8"))
    lengths = [len(bpe.replay(text, n)) for n in range(0, len(bpe.merges) + 1, 16)]
    assert all(a >= b for a, b in zip(lengths, lengths[1:]))  # each merge can only join tokens
    assert lengths[-1] < lengths[0]
    chunks = bpe.replay_chunks("hello world", 5)
    assert len(chunks) == 2 and sum(chunks, []) == bpe.replay("hello world", 5)


def test_bpe_compresses_better_than_bytes(bpe):
    text = corpus_text("tinyshakespeare")[-10_000:]  # not in the training slice
    assert len(bpe.encode(text)) < 0.75 * len(text.encode("utf-8"))


def test_bpe_is_deterministic():
    text = SAMPLE[:5000]
    assert T.build("bpe", text, 300).merges == T.build("bpe", text, 300).merges


def test_bpe_matches_simple_reference():
    # the incremental trainer must learn the same merges as the textbook "count all pairs, merge the top one"
    text = SAMPLE[:3000] + UNICODE + " abcabc abab bcbc"
    chunks = [list(c.encode("utf-8")) for c in T._SPLIT.findall(text)]
    vocab = [bytes([i]) for i in range(256)]
    expected = []
    while len(vocab) < 330:
        counts = {}
        for ids in chunks:
            for p in zip(ids, ids[1:]):
                counts[p] = counts.get(p, 0) + 1
        allowed = [(-c, p) for p, c in counts.items() if vocab[p[0]] + vocab[p[1]] not in vocab]
        pair = min(allowed)[1]
        expected.append(pair)
        vocab.append(vocab[pair[0]] + vocab[pair[1]])
        chunks = [T._merge(ids, pair, len(vocab) - 1) for ids in chunks]
    assert T.train_bpe(text, 330) == expected


def test_bpe_stops_early_on_tiny_text():
    tok = T.build("bpe", "abab", vocab_size=1000)
    assert tok.vocab_size < 1000 and tok.merges  # learned what it could
    assert tok.decode(tok.encode("abab ba")) == "abab ba"
    assert T.build("bpe", "ab", 300).vocab_size == 257


@pytest.mark.parametrize("size", [255, 4097, 10_000, 0, "512", 300.5])
def test_bpe_vocab_size_out_of_range(size):
    with pytest.raises(ConfigError) as e:
        T.build("bpe", SAMPLE[:100], vocab_size=size)
    assert "256" in str(e.value) and "4096" in str(e.value)


def test_bpe_empty_text_refused():
    with pytest.raises(GptvizError):
        T.build("bpe", "", 300)
    with pytest.raises(GptvizError):
        T.build("char", "")


def test_bpe_on_the_full_corpus():  # its speed: `python -m gptviz bench`
    text = corpus_text("tinyshakespeare")
    tok = T.build("bpe", text, 512)
    assert tok.vocab_size == 512
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert len(ids) < 0.6 * len(text.encode("utf-8"))
