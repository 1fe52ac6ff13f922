import base64
import hashlib
import json
import re

import pytest
import torch

from gptviz import cli
from gptviz import tokenizers as T
from gptviz.data import corpus_text
from gptviz.errors import CheckpointError, ConfigError, GptvizError, TokenizerError
from ui import data as data_page

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


def textbook_merges(text, vocab_size):
    """The textbook BPE trainer: count all pairs in every chunk, merge the top one everywhere, repeat."""
    chunks = [list(c.encode("utf-8")) for c in T._SPLIT.findall(text)]
    vocab = [bytes([i]) for i in range(256)]
    expected = []
    while len(vocab) < vocab_size:
        counts = {}
        for ids in chunks:
            for p in zip(ids, ids[1:]):
                counts[p] = counts.get(p, 0) + 1
        allowed = [(-c, p) for p, c in counts.items() if vocab[p[0]] + vocab[p[1]] not in vocab]
        if not allowed:
            break
        pair = min(allowed)[1]
        expected.append(pair)
        vocab.append(vocab[pair[0]] + vocab[pair[1]])
        chunks = [T._merge(ids, pair, len(vocab) - 1) for ids in chunks]
    return expected


NO_SPACES = re.sub(r"[^A-Za-z]", "", SAMPLE)  # one long chunk, like Chinese, Thai or minified code


@pytest.mark.parametrize("text, size", [
    (SAMPLE[:3000] + UNICODE + " abcabc abab bcbc", 330),
    ("aaaaaaaaaa aaa aaaa ab ab abab " * 3 + "bbbbbbb", 270),  # runs: "aaa" merges as "(aa)a"
    (NO_SPACES[:4000], 330),
    ("".join(chr(0x4E00 + ord(c) % 40) for c in NO_SPACES[:1500]), 320),  # CJK without punctuation
])
def test_bpe_matches_simple_reference(text, size):
    # the incremental trainer must learn the same merges as the textbook "count all pairs, merge the top one"
    assert T.train_bpe(text, size) == textbook_merges(text, size)


def textbook_replay(tok, text, n):
    """The BPE rule by rescanning every pair after each join (the old replay, tiktoken's rule)."""
    out = []
    for chunk in T._SPLIT.findall(text):
        data, limit = chunk.encode(), 256 + n
        if tok.ranks.get(data, limit) < limit:
            out.append(tok.ranks[data])
            continue
        parts = [bytes([b]) for b in data]
        while True:
            ranks = [tok.ranks.get(a + b, limit) for a, b in zip(parts, parts[1:])]
            if not ranks or min(ranks) >= limit:
                break
            i = ranks.index(min(ranks))
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        out += [tok.ranks[p] for p in parts]
    return out


def test_bpe_replay_of_a_long_chunk_matches_the_textbook_rule():
    tok = T.build("bpe", NO_SPACES, 400)
    text = NO_SPACES[-1500:]  # a single 1,500-letter chunk
    for n in (0, 1, 7, 50, 143):
        assert tok.replay(text, n) == textbook_replay(tok, text, n)
    long = NO_SPACES[:10_000]  # the size the bench times
    assert tok.replay(long) == tok.encode(long)


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


# ---------------------------------------------------------------- text without ids: one rule for all kinds

BROKEN = "a\udc00b"  # a lone surrogate: half of a UTF-16 pair, no UTF-8 bytes


@pytest.mark.parametrize("name", ["char", "gpt2", "bpe"])
def test_lone_surrogate_one_behaviour(name, request):
    tok = T.build("char", "ab?") if name == "char" else request.getfixturevalue(name)
    with pytest.raises(TokenizerError) as e:
        tok.encode(BROKEN)
    assert "'\\udc00'" in str(e.value) and "surrogate" in str(e.value)
    rep = tok.replacement  # "?" for this char model, U+FFFD for the byte-level kinds
    assert tok.encode(BROKEN, unknown="replace") == tok.encode("a" + rep + "b")
    assert tok.encode(BROKEN, unknown="skip") == tok.encode("ab")
    assert tok.decode(tok.encode(BROKEN, unknown="replace")) == "a" + rep + "b"
    if name != "char":
        assert rep == "\ufffd"


def test_replay_equals_encode_in_every_mode(bpe):
    text = "hello " + BROKEN + " world\ud83d"
    for mode in ("replace", "skip"):
        assert bpe.replay(text, unknown=mode) == bpe.encode(text, unknown=mode)
    with pytest.raises(TokenizerError):
        bpe.replay(text)  # the same error as encode, not a UnicodeEncodeError
    assert bpe.replay(text, 0, unknown="replace") == list(bpe.clean(text, "replace").encode())


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_training_text_with_lone_surrogates_refused(kind):
    with pytest.raises(TokenizerError) as e:
        T.build(kind, "hello " * 20 + BROKEN, 300)
    assert "surrogate" in str(e.value) and "Remove" in str(e.value)


def test_unknown_mode_checked(gpt2):
    with pytest.raises(ConfigError) as e:
        gpt2.encode("hi", unknown="ignore")
    assert "error" in str(e.value) and "skip" in str(e.value)


def test_closed_vocabulary_only_for_char(char, gpt2, bpe):
    # what the pages read to offer "replace unseen characters"
    assert (char.closed_vocabulary, gpt2.closed_vocabulary, bpe.closed_vocabulary) == (True, False, False)


# ---------------------------------------------------------------- kinds: one registry


def test_a_new_kind_is_one_class_and_one_registration():
    class Upper(T.CharTokenizer):  # e.g. a char tokenizer over upper-cased text
        kind = "upper"
        title = "Upper-case characters"

        @classmethod
        def build(cls, text, vocab_size=None):
            return cls("".join(sorted(set(text.upper()))))

        def to_dict(self):
            return {"kind": "upper", "chars": self.chars}

    T.register(Upper)
    try:
        tok = T.build("upper", "Hello")
        assert tok.chars == "EHLO" and tok.encode("HELLO") == [1, 0, 2, 2, 3]
        assert T.from_dict(tok.to_dict()).chars == "EHLO"
        with pytest.raises(GptvizError) as e:
            T.build("word")
        assert "upper" in str(e.value)  # the list of kinds is read from the registry
        # the Data page offers it under its title, the Train page's caption names it, the CLI accepts it
        assert data_page.TOKENIZER_LABELS["upper"] == "Upper-case characters"
        assert list(data_page.TOKENIZER_LABELS) == ["char", "gpt2", "bpe", "upper"]
        assert cli.build_parser().parse_args(["train", "--tokenizer", "upper"]).tokenizer == "upper"
    finally:
        del T.KINDS["upper"]
    assert list(T.KINDS) == ["char", "gpt2", "bpe"]
    assert "upper" not in data_page.TOKENIZER_LABELS
    with pytest.raises(SystemExit):  # argparse refuses a kind that is not registered
        cli.build_parser().parse_args(["train", "--tokenizer", "upper"])


# ---------------------------------------------------------------- GPT-2 ranks: the bundled file, checked


def _swap_hello_world(data: bytes) -> bytes:
    """The ranks file with the ranks of 'hello' and ' world' swapped (still a valid ranks file)."""
    lines = data.split(b"\n")
    hello, world = base64.b64encode(b"hello"), base64.b64encode(b" world")
    for n, line in enumerate(lines):
        tok, _, rank = line.partition(b" ")
        if tok == hello:
            lines[n] = tok + b" 995"
        elif tok == world:
            lines[n] = tok + b" 31373"
    return b"\n".join(lines)


def test_gpt2_ignores_a_poisoned_tiktoken_cache(tmp_path, monkeypatch):
    import tiktoken.load

    cache = tmp_path / "cache"
    cache.mkdir()
    # where tiktoken's download cache keeps a copy of a file it loaded by path
    key = hashlib.sha1(str(T.GPT2_RANKS_FILE).encode()).hexdigest()
    (cache / key).write_bytes(_swap_hello_world(T.GPT2_RANKS_FILE.read_bytes()))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    # the planted entry is real: tiktoken's loader trusts it...
    assert tiktoken.load.load_tiktoken_bpe(str(T.GPT2_RANKS_FILE))[b"hello"] == 995
    # ...gptviz reads the bundled file itself
    assert T.load_gpt2_encoding().encode_ordinary("hello world") == [31373, 995]


def test_gpt2_starts_with_an_unwritable_cache_dir(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "a-file" / "cache"))  # no one can create it
    enc = T.load_gpt2_encoding()
    assert enc.encode_ordinary("hello world") == [31373, 995] and enc.n_vocab == 50257
    assert not (tmp_path / "a-file").is_dir()


def test_gpt2_ranks_hash_is_the_files():
    assert hashlib.sha256(T.GPT2_RANKS_FILE.read_bytes()).hexdigest() == T.GPT2_RANKS_SHA256


@pytest.mark.parametrize("damage", [
    lambda d: _swap_hello_world(d),  # still well-formed: only the checksum tells
    lambda d: d[: len(d) // 2],  # cut off
    lambda d: d.replace(b"IQ== 0", b"IQ== x"),
])
def test_gpt2_damaged_ranks_refused(tmp_path, damage):
    bad = tmp_path / "gpt2.tiktoken"
    bad.write_bytes(damage(T.GPT2_RANKS_FILE.read_bytes()))
    with pytest.raises(TokenizerError) as e:
        T.load_gpt2_encoding(bad)
    assert "damaged" in str(e.value) and "Reinstall" in str(e.value)


def test_gpt2_missing_ranks_refused(tmp_path):
    with pytest.raises(TokenizerError) as e:
        T.load_gpt2_encoding(tmp_path / "nothing.tiktoken")
    assert "cannot be read" in str(e.value)
