"""Tokenizers: turn text into a list of integer ids and back.

Three kinds share one interface (`Tokenizer`), each registered once in `KINDS`:
- "char": one id per distinct character of the training text (the lecture's stoi/itos).
- "gpt2": OpenAI's GPT-2 byte-level BPE, 50257 tokens, read offline from assets/gpt2.tiktoken.
- "bpe":  a byte-level BPE trained here on the student's own text, 256..4096 tokens.

    tok = build("char", text=corpus)
    ids = tok.encode("hello")
    tok.decode(ids) == "hello"

Adding a kind = one `Tokenizer` subclass with `kind`, `title`, `build` and `from_data`, decorated
`@register`: the Data page's choices, the Train page's caption and the CLI's `--tokenizer` read `KINDS`.

Text a tokenizer has no ids for (a character a char model never saw; a lone surrogate such as
"\udc00", which is half of a UTF-16 pair and cannot be written as UTF-8) is handled the same way
by every kind and every method (`encode`, BPE's `replay`), as `unknown=` says: "error" (a message
for the student), "replace" (with `tok.replacement`: U+FFFD for the byte-level kinds) or "skip".
Text with lone surrogates is never learned from (char and BPE training refuse it).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import functools
import hashlib
import heapq
import operator
import re
from abc import ABC, abstractmethod
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import regex
import tiktoken

from .errors import CheckpointError, ConfigError, GptvizError, TokenizerError

BPE_MIN_VOCAB, BPE_MAX_VOCAB = 256, 4096
BPE_MAX_TOKEN_BYTES = 2**20  # all tokens' bytes together; trained ones are short (a 4,096-token vocabulary: ~30 KB)
DEFAULT_BPE_VOCAB = 512
UNKNOWN_MODES = ("error", "replace", "skip")
_PAIR = BPE_MAX_VOCAB  # a pair of ids (a, b) is coded a * _PAIR + b while training: ints hash fast

GPT2_RANKS_FILE = Path(__file__).parent / "assets" / "gpt2.tiktoken"
# sha256 of the bundled ranks (the same file as openaipublic's gpt2 encoder): a changed file is refused
GPT2_RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
GPT2_VOCAB_SIZE = 50257  # 50000 merges + 256 bytes + <|endoftext|>
ENDOFTEXT = "<|endoftext|>"
# How GPT-2 cuts text into chunks before BPE; merges never cross a chunk boundary.
# Copied from tiktoken_ext/openai_public.py (r50k_pat_str), so our splits match tiktoken's.
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
_SPLIT = regex.compile(GPT2_SPLIT_PATTERN)
_SURROGATE = re.compile("[\ud800-\udfff]")  # half of a UTF-16 pair: not text, no UTF-8 bytes

# Whitespace made visible in chart labels.
_VISIBLE = {" ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍"}


def _hex_bytes(err: UnicodeDecodeError):
    # a token can hold part of a multi-byte character (e.g. the first byte of '€'): show its bytes
    return "".join(f"<0x{b:02X}>" for b in err.object[err.start:err.end]), err.end


codecs.register_error("gptviz_hex", _hex_bytes)


def visible(text: str) -> str:
    """Text with whitespace and control characters made visible, for labels."""
    return "".join(_VISIBLE.get(c) or (c if c.isprintable() else f"<0x{ord(c):02X}>") for c in text)


def _as_id_list(ids) -> list[int]:
    """Accept a list of ints or a 1-D tensor."""
    if hasattr(ids, "tolist"):  # torch tensor or numpy array
        ids = ids.tolist()
    try:
        ids = [operator.index(i) for i in ([ids] if isinstance(ids, int) else ids)]
    except TypeError:
        raise TokenizerError("Token ids must be whole numbers (a list or a 1-D tensor of ids).") from None
    if any(i < 0 for i in ids):
        raise TokenizerError("Token ids cannot be negative.")
    return ids


def _shown(chars: list[str]) -> str:
    more = f" and {len(chars) - 10} more" if len(chars) > 10 else ""
    return ", ".join(repr(c) for c in chars[:10]) + more


def _broken_text_message(where: str, broken: list[str]) -> str:
    return (f"{where} has broken characters ({_shown(broken)}): each is half of a UTF-16 pair "
            "(a 'lone surrogate', e.g. from a damaged copy-paste), which is not text and has no UTF-8 bytes.")


def refuse_broken_text(text: str, what: str = "The text"):
    """Learning a tokenizer from text with lone surrogates would give ids no other text can reach."""
    broken = list(dict.fromkeys(_SURROGATE.findall(text)))
    if broken:
        raise TokenizerError(_broken_text_message(what, broken) + " Remove them and try again.")


class Tokenizer(ABC):
    kind: str
    title: str = ""  # what the app calls this kind (the Data page's choice); the kind name when empty
    options: tuple[str, ...] = ()  # the settings `build` reads besides the text ("vocab_size": a size to learn)
    unknown = "error"  # what encode does with text it has no ids for; see UNKNOWN_MODES
    replacement: str  # what "replace" puts in place of such text
    closed_vocabulary = False  # True: ordinary text can hold characters with no id (so offer "replace")

    # --- a kind: how to make one, and how to rebuild a saved one --------------------------

    @classmethod
    @abstractmethod
    def build(cls, text: str, vocab_size: int | None = None) -> Tokenizer:
        """A tokenizer of this kind for `text` (kinds that learn nothing ignore it)."""

    @classmethod
    @abstractmethod
    def from_data(cls, d: dict) -> Tokenizer:
        """Rebuild from `to_dict()`'s output; raise a GptvizError if it is damaged."""

    @abstractmethod
    def to_dict(self) -> dict: ...

    # --- text <-> ids ------------------------------------------------------------------

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @abstractmethod
    def unknown_chars(self, text: str) -> list[str]:
        """The distinct characters of text that have no id here, in order of appearance (fast when none)."""

    @abstractmethod
    def _encode(self, text: str) -> list[int]:
        """Ids of text that has no unknown characters."""

    @abstractmethod
    def decode(self, ids) -> str:
        """ids: list of ints or 1-D tensor. Ids the tokenizer does not have (a model's padded
        vocabulary) decode to '�' rather than crashing a sample."""

    @abstractmethod
    def _label(self, i: int) -> str: ...

    def encode(self, text: str, unknown: str | None = None) -> list[int]:
        """Ids of text. unknown: "error" (default), "replace" or "skip" for characters without an id."""
        return self._encode(self.clean(text, unknown))

    def clean(self, text: str, unknown: str | None = None) -> str:
        """text with its unknown characters handled as `unknown` says (see UNKNOWN_MODES)."""
        mode = unknown or self.unknown
        if mode not in UNKNOWN_MODES:
            raise ConfigError(f"unknown must be one of {', '.join(map(repr, UNKNOWN_MODES))}, not {mode!r}.")
        missing = self.unknown_chars(text)
        if not missing:
            return text
        if mode == "error":
            raise TokenizerError(self._unknown_message(missing))
        sub, drop = (self.replacement if mode == "replace" else ""), set(missing)
        return "".join(sub if c in drop else c for c in text)

    def _unknown_message(self, missing: list[str]) -> str:
        return _broken_text_message("The text", missing) + " Remove them or turn on replacement."

    def label(self, i) -> str:
        """A short label of one token for charts, with visible whitespace."""
        (i,) = _as_id_list(i)
        return self._label(i) if i < self.vocab_size else f"<unused {i}>"

    def labels(self) -> list[str]:
        """Labels of all ids; computed once (gpt2 has 50257)."""
        if getattr(self, "_labels", None) is None:
            self._labels = [self._label(i) for i in range(self.vocab_size)]
        return self._labels

    def __repr__(self):
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


KINDS: dict[str, type[Tokenizer]] = {}  # kind name -> class, in the order the app lists them


def register(cls: type[Tokenizer]) -> type[Tokenizer]:
    """Class decorator: make a tokenizer kind known to `build`, `from_dict`, the app and the CLI."""
    KINDS[cls.kind] = cls
    return cls


# ----------------------------------------------------------------------------- char


@register
class CharTokenizer(Tokenizer):
    """One token per character. ids follow the order of `chars` (sorted when built from text)."""

    kind = "char"
    title = "Characters"
    closed_vocabulary = True

    def __init__(self, chars: str, unknown: str = "error"):
        if not isinstance(chars, str) or not chars:
            raise TokenizerError("A character tokenizer needs at least one character.")
        if len(set(chars)) != len(chars):
            raise TokenizerError("The character list of a char tokenizer has repeated characters.")
        refuse_broken_text(chars, "The character list")
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}
        self.itos = list(chars)
        self.unknown = unknown
        # stand-in for characters the model never saw, when replacement is on
        self.replacement = next((c for c in "? " if c in self.stoi), chars[0])

    @classmethod
    def from_text(cls, text: str, **kwargs) -> CharTokenizer:
        if not text:
            raise TokenizerError("A character tokenizer needs some text to collect its characters from.")
        refuse_broken_text(text)
        return cls("".join(sorted(set(text))), **kwargs)

    @classmethod
    def build(cls, text: str, vocab_size: int | None = None) -> CharTokenizer:
        return cls.from_text(text)

    @classmethod
    def from_data(cls, d: dict) -> CharTokenizer:
        if not isinstance(d.get("chars"), str):
            raise CheckpointError("A char tokenizer needs its 'chars' (a string).")
        return cls(d["chars"])

    def to_dict(self) -> dict:
        return {"kind": "char", "chars": self.chars}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def unknown_chars(self, text: str) -> list[str]:
        if self.stoi.keys() >= set(text):  # the common case, one C-speed pass
            return []
        return list(dict.fromkeys(c for c in text if c not in self.stoi))

    def _encode(self, text: str) -> list[int]:
        stoi = self.stoi
        return [stoi[c] for c in text]

    def _unknown_message(self, missing: list[str]) -> str:
        broken = [c for c in missing if _SURROGATE.match(c)]
        why = f" {_broken_text_message('The prompt', broken)}" if broken else ""
        return (f"The prompt uses characters this model never saw: {_shown(missing)}.{why} "
                "Remove them or turn on replacement.")

    def decode(self, ids) -> str:
        itos, n = self.itos, len(self.itos)
        return "".join(itos[i] if i < n else "�" for i in _as_id_list(ids))

    def _label(self, i: int) -> str:
        return visible(self.itos[i])


# ----------------------------------------------------------------------------- gpt2


def read_ranks(path: Path | str, sha256: str) -> dict[bytes, int]:
    """A .tiktoken ranks file (one "base64-token rank" per line), checked against its sha256.

    Read here rather than with tiktoken.load.load_tiktoken_bpe, which copies the file into a
    download cache under the temp folder and trusts whatever it later finds there.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TokenizerError(f"The GPT-2 tokenizer's ranks file {path.name} cannot be read ({e.strerror}). "
                             "Reinstall gptviz.") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise TokenizerError(f"The GPT-2 tokenizer's ranks file {path.name} is damaged or was changed "
                             "(its checksum does not match), so GPT-2 tokens are off. Reinstall gptviz "
                             "(or restore gptviz/assets/gpt2.tiktoken with git).")
    try:
        return {base64.b64decode(token, validate=True): int(rank)
                for token, rank in (line.split() for line in data.splitlines() if line)}
    except (ValueError, binascii.Error):  # only reachable if the pinned hash itself is of a bad file
        raise TokenizerError(f"The GPT-2 ranks file {path.name} is not in the base64-token rank format.") from None


def load_gpt2_encoding(path: Path | str = GPT2_RANKS_FILE, sha256: str = GPT2_RANKS_SHA256) -> tiktoken.Encoding:
    """GPT-2's tokenizer built from the bundled ranks file: no download, no cache folder (~0.3 s)."""
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=GPT2_SPLIT_PATTERN,
        mergeable_ranks=read_ranks(path, sha256),
        special_tokens={ENDOFTEXT: GPT2_VOCAB_SIZE - 1},
        explicit_n_vocab=GPT2_VOCAB_SIZE,
    )


@functools.lru_cache(maxsize=1)
def gpt2_encoding() -> tiktoken.Encoding:
    """The bundled GPT-2 encoding, built once per process."""
    return load_gpt2_encoding()


class _TiktokenTokenizer(Tokenizer):
    """Shared by gpt2 and bpe: both are byte-level BPE run by tiktoken."""

    enc: tiktoken.Encoding
    replacement = "\ufffd"  # Unicode's replacement character, as a UTF-8 decoder would show

    @property
    def vocab_size(self) -> int:
        return self.enc.n_vocab

    def unknown_chars(self, text: str) -> list[str]:
        # every character has UTF-8 bytes except lone surrogates (tiktoken would silently replace them)
        return [] if text.isascii() else list(dict.fromkeys(_SURROGATE.findall(text)))

    def _encode(self, text: str) -> list[int]:
        # encode_ordinary: a literal "<|endoftext|>" typed by a student is just text
        return self.enc.encode_ordinary(text)

    def decode(self, ids) -> str:
        ids = _as_id_list(ids)
        n = self.vocab_size
        if all(i < n for i in ids):
            return self.enc.decode(ids)  # broken UTF-8 (half a character) becomes '�'
        return b"".join(self.token_bytes(i) if i < n else "�".encode() for i in ids).decode("utf-8", "replace")

    def token_bytes(self, i: int) -> bytes:
        return self.enc.decode_single_token_bytes(i)

    def _label(self, i: int) -> str:
        return visible(self.token_bytes(i).decode("utf-8", errors="gptviz_hex"))


@register
class GPT2Tokenizer(_TiktokenTokenizer):
    kind = "gpt2"
    title = "GPT-2 BPE (50,257 tokens)"

    def __init__(self):
        self.enc = gpt2_encoding()

    @classmethod
    def build(cls, text: str = "", vocab_size: int | None = None) -> GPT2Tokenizer:
        return cls()

    @classmethod
    def from_data(cls, d: dict) -> GPT2Tokenizer:
        return cls()

    def to_dict(self) -> dict:
        return {"kind": "gpt2"}  # the ranks ship with the package


# ----------------------------------------------------------------------------- bpe


def _merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of `pair` in ids (left to right) with new_id: the textbook step."""
    out, i, n = [], 0, len(ids)
    while i < n:
        if i < n - 1 and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _check_bpe_request(text: str, vocab_size: int):
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or not BPE_MIN_VOCAB <= vocab_size <= BPE_MAX_VOCAB:
        raise ConfigError(
            f"The BPE vocab_size must be a whole number from {BPE_MIN_VOCAB} to {BPE_MAX_VOCAB}, "
            f"not {vocab_size!r}."
        )
    if not text:
        raise ConfigError("BPE needs some text to learn its merges from, but the text is empty.")
    refuse_broken_text(text)


def _byte_pairs(sym: list[int], nxt: list[int], weight: list[int]):
    """Count every neighbouring byte pair (weighted) and list where each occurs, in one numpy pass
    (a Python loop over a megabyte of bytes would take half a second). Pairs are coded a * _PAIR + b."""
    s, nx = np.array(sym, dtype=np.int64), np.array(nxt, dtype=np.int64)
    left = np.flatnonzero(nx != -1)  # positions that start a pair
    codes = s[left] * _PAIR + s[left + 1]
    order = np.argsort(codes, kind="stable")  # group the positions by pair, each group in text order
    codes, left = codes[order], left[order]
    totals = np.bincount(codes, weights=np.array(weight, dtype=np.float64)[left])
    uniq, starts = np.unique(codes, return_index=True)
    counts: dict[int, int] = defaultdict(int)
    where: dict[int, list[int]] = defaultdict(list)  # pair -> positions of its left symbol
    for code, group in zip(uniq.tolist(), np.split(left, starts[1:])):
        counts[code] = int(totals[code])
        where[code] = group.tolist()
    return counts, where


def train_bpe(text: str, vocab_size: int) -> list[tuple[int, int]]:
    """Learn byte-level BPE merges on text: the ordered list of (id_a, id_b); merge i makes id 256+i.

    The result is the textbook algorithm's (count all neighbouring pairs in every chunk, merge the
    most frequent pair everywhere, left to right; ties go to the smallest pair; repeat), computed
    without rescanning the text:
    - each distinct chunk is stored once with its count (" the" appears thousands of times);
    - the chunks' bytes sit in one linked list and each pair keeps the positions where it occurs,
      so a merge touches only its own occurrences (a text without spaces is one huge chunk:
      rescanning it for every merge was quadratic);
    - a max-heap of pair counts gives the next merge.
    """
    _check_bpe_request(text, vocab_size)
    sym: list[int] = []  # the byte ids of every distinct chunk, one after another; -1 once merged away
    weight: list[int] = []  # how often the chunk holding this position occurs in the text
    nxt: list[int] = []  # position of the next symbol in the same chunk, or -1
    for chunk, count in Counter(_SPLIT.findall(text)).items():
        data = chunk.encode("utf-8")
        start = len(sym)
        sym.extend(data)
        weight.extend([count] * len(data))
        nxt.extend(range(start + 1, start + len(data)))
        nxt.append(-1)
    prv = [-1] * len(sym)
    for i, j in enumerate(nxt):
        if j != -1:
            prv[j] = i
    counts, where = _byte_pairs(sym, nxt, weight)  # pair code -> count, pair code -> positions

    # max-heap of (-count, pair code): ties go to the smallest pair, so training is deterministic.
    # Entries go stale when a count drops; we notice when one is popped and push it back corrected.
    heap = [(-c, p) for p, c in counts.items()]
    heapq.heapify(heap)
    token_bytes = [bytes([i]) for i in range(256)]
    known = set(token_bytes)
    merges: list[tuple[int, int]] = []

    while len(token_bytes) < vocab_size and heap:
        neg, pair = heapq.heappop(heap)
        count = counts.get(pair, 0)
        if count <= 0:
            continue
        if -neg != count:  # stale entry
            heapq.heappush(heap, (-count, pair))
            continue
        del counts[pair]
        positions = where.pop(pair)
        a, b = divmod(pair, _PAIR)
        new_bytes = token_bytes[a] + token_bytes[b]
        if new_bytes in known:
            # e.g. ("a","bc") when "abc" was already made from ("ab","c"): tiktoken needs each
            # byte string to have one id, so we never learn it twice. Drop the pair for good.
            continue
        new_id = len(token_bytes)
        merges.append((a, b))
        token_bytes.append(new_bytes)
        known.add(new_bytes)
        grown = set()
        for i in sorted(set(positions)):  # left to right, like the textbook: "aaa" -> "(aa)a"
            j = nxt[i]
            if sym[i] != a or j == -1 or sym[j] != b:
                continue  # this occurrence was changed by an earlier merge (or just now, in "aaa")
            w, h, k = weight[i], prv[i], nxt[j]
            if h != -1:  # (x, a) becomes (x, new)
                x = sym[h] * _PAIR
                if x + a != pair:
                    counts[x + a] -= w
                counts[x + new_id] += w
                where[x + new_id].append(h)
                grown.add(x + new_id)
            if k != -1:  # (b, y) becomes (new, y)
                y = sym[k]
                if b * _PAIR + y != pair:
                    counts[b * _PAIR + y] -= w
                counts[new_id * _PAIR + y] += w
                where[new_id * _PAIR + y].append(i)
                grown.add(new_id * _PAIR + y)
                prv[k] = i
            sym[i], nxt[i], sym[j] = new_id, k, -1
        for p in grown:  # only pairs with new_id grow: push them now, they may be the next best
            heapq.heappush(heap, (-counts[p], p))
    return merges


def _bpe_chunk(data: bytes, ranks: dict[bytes, int], limit: int) -> list[bytes]:
    """The BPE rule on one chunk: keep joining the neighbouring pair whose joined bytes have the
    lowest rank (below `limit`; the leftmost on a tie) until none is left.

    Same result as rescanning all pairs after every join (what tiktoken does in Rust), but the
    candidate pairs wait in a heap, so a 10 kB chunk without spaces takes milliseconds, not seconds.
    """
    parts: list[bytes | None] = [bytes([b]) for b in data]
    n = len(parts)
    nxt, prv = list(range(1, n + 1)), list(range(-1, n - 1))
    nxt[-1] = -1

    def rank(i: int) -> int:
        j = nxt[i]
        return limit if j == -1 else ranks.get(parts[i] + parts[j], limit)

    heap = [(r, i) for i in range(n - 1) if (r := rank(i)) < limit]  # (rank, position): leftmost wins ties
    heapq.heapify(heap)
    while heap:
        r, i = heapq.heappop(heap)
        if parts[i] is None or rank(i) != r:
            continue  # stale: this position was joined or its neighbour changed
        j = nxt[i]
        parts[i], parts[j] = parts[i] + parts[j], None
        nxt[i] = nxt[j]
        if nxt[j] != -1:
            prv[nxt[j]] = i
        for p in (prv[i], i):  # the two pairs that now include the joined part
            if p != -1 and (rp := rank(p)) < limit:
                heapq.heappush(heap, (rp, p))
    return [p for p in parts if p is not None]


@register
class BPETokenizer(_TiktokenTokenizer):
    """Byte-level BPE: ids 0..255 are raw bytes, merge i creates id 256+i.

    `merges` keeps the learned order so the app can replay them one by one (`replay`).
    Encoding itself is done by tiktoken, from the same ranks, so it is fast.
    If the text has too few distinct pairs, training stops early and vocab_size is what
    was learned (smaller than asked).
    """

    kind = "bpe"
    title = "BPE trained on this text"
    options = ("vocab_size",)

    def __init__(self, merges):
        self.merges: list[tuple[int, int]] = []
        self._bytes = [bytes([i]) for i in range(256)]
        ranks = {b: i for i, b in enumerate(self._bytes)}
        total = 256  # bytes in all tokens so far
        for a, b in merges:
            new_id = len(self._bytes)
            ok = all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < new_id for x in (a, b))
            if not ok:
                raise CheckpointError(f"BPE merge {new_id - 256} refers to tokens that do not exist yet: {[a, b]}.")
            total += len(self._bytes[a]) + len(self._bytes[b])
            if total > BPE_MAX_TOKEN_BYTES:  # counted before joining: merges of merges double a token's length
                raise CheckpointError(f"BPE merge {new_id - 256} makes the tokens longer than "
                                      f"{BPE_MAX_TOKEN_BYTES // 2**20} MB in all: the tokenizer is damaged.")
            new_bytes = self._bytes[a] + self._bytes[b]
            if new_bytes in ranks:
                raise CheckpointError(f"BPE merge {new_id - 256} makes a token that already exists.")
            self.merges.append((a, b))
            self._bytes.append(new_bytes)
            ranks[new_bytes] = new_id
        self.ranks = ranks  # token bytes -> id; the id is also its rank (earlier merges win)
        self.enc = tiktoken.Encoding(
            name=f"gptviz-bpe-{len(ranks)}", pat_str=GPT2_SPLIT_PATTERN, mergeable_ranks=ranks, special_tokens={}
        )

    @classmethod
    def train(cls, text: str, vocab_size: int = DEFAULT_BPE_VOCAB) -> BPETokenizer:
        return cls(train_bpe(text, vocab_size))

    @classmethod
    def build(cls, text: str, vocab_size: int | None = None) -> BPETokenizer:
        return cls.train(text, DEFAULT_BPE_VOCAB if vocab_size is None else vocab_size)

    @classmethod
    def from_data(cls, d: dict) -> BPETokenizer:
        merges = d.get("merges")
        if not isinstance(merges, list) or not all(isinstance(m, (list, tuple)) and len(m) == 2 for m in merges):
            raise CheckpointError("Each BPE merge must be a pair of token ids.")
        if len(merges) > BPE_MAX_VOCAB - 256:
            raise CheckpointError(f"A BPE tokenizer has at most {BPE_MAX_VOCAB - 256} merges, not {len(merges)}.")
        return cls(merges)

    def to_dict(self) -> dict:
        return {"kind": "bpe", "merges": [[a, b] for a, b in self.merges]}

    def token_bytes(self, i: int) -> bytes:
        return self._bytes[i]

    def replay_chunks(self, text: str, n_merges: int | None = None, unknown: str | None = None) -> list[list[int]]:
        """Ids of each chunk of text when the tokenizer knows only its first n_merges merges.

        n_merges=0 gives the raw bytes; n_merges=None (all) gives exactly encode(text, unknown).
        """
        n = len(self.merges) if n_merges is None else max(0, min(int(n_merges), len(self.merges)))
        limit = 256 + n  # ids below this are known
        out = []
        for chunk in _SPLIT.findall(self.clean(text, unknown)):
            data = chunk.encode("utf-8")
            if self.ranks.get(data, limit) < limit:  # tiktoken's shortcut: the whole chunk is one token
                out.append([self.ranks[data]])
            else:
                out.append([self.ranks[p] for p in _bpe_chunk(data, self.ranks, limit)])
        return out

    def replay(self, text: str, n_merges: int | None = None, unknown: str | None = None) -> list[int]:
        """Ids of text after only the first n_merges merges (all of them: same as encode)."""
        return [i for chunk in self.replay_chunks(text, n_merges, unknown) for i in chunk]


# ----------------------------------------------------------------------------- factory


def _kind(kind) -> type[Tokenizer] | None:
    return KINDS.get(kind) if isinstance(kind, str) else None


def build(kind: str, text: str | None = None, vocab_size: int | None = None) -> Tokenizer:
    """Make a tokenizer. char and bpe learn from text; gpt2 is fixed. vocab_size is for bpe."""
    cls = _kind(kind)
    if cls is None:
        raise ConfigError(f"Unknown tokenizer {kind!r}. Choose one of: {', '.join(KINDS)}.")
    return cls.build(text or "", vocab_size)


def from_dict(d: dict) -> Tokenizer:
    """Rebuild a tokenizer saved with `to_dict()` (e.g. inside a checkpoint)."""
    cls = _kind(d.get("kind")) if isinstance(d, dict) else None
    if cls is None:
        raise CheckpointError(
            f"The saved tokenizer is damaged or unknown: expected a dict with kind one of {', '.join(KINDS)} "
            f"and its data, got {str(d)[:80]!r}."
        )
    try:
        return cls.from_data(d)
    except GptvizError as e:
        raise CheckpointError(f"The saved tokenizer is damaged: {e}") from None
