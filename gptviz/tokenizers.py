"""Tokenizers: turn text into a list of integer ids and back.

Three kinds share one interface (`Tokenizer`):
- "char": one id per distinct character of the training text (the lecture's stoi/itos).
- "gpt2": OpenAI's GPT-2 byte-level BPE, 50257 tokens, loaded offline from assets/gpt2.tiktoken.
- "bpe":  a byte-level BPE trained here on the student's own text, 256..4096 tokens.

    tok = build("char", text=corpus)
    ids = tok.encode("hello")
    tok.decode(ids) == "hello"
"""

from __future__ import annotations

import codecs
import functools
import heapq
import operator
from abc import ABC, abstractmethod
from collections import Counter, defaultdict
from pathlib import Path

import regex
import tiktoken
import tiktoken.load

from .errors import CheckpointError, ConfigError, GptvizError, TokenizerError

KINDS = ("char", "gpt2", "bpe")
BPE_MIN_VOCAB, BPE_MAX_VOCAB = 256, 4096
DEFAULT_BPE_VOCAB = 512

GPT2_RANKS_FILE = Path(__file__).parent / "assets" / "gpt2.tiktoken"
GPT2_VOCAB_SIZE = 50257  # 50000 merges + 256 bytes + <|endoftext|>
ENDOFTEXT = "<|endoftext|>"
# How GPT-2 cuts text into chunks before BPE; merges never cross a chunk boundary.
# Copied from tiktoken_ext/openai_public.py (r50k_pat_str), so our splits match tiktoken's.
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
_SPLIT = regex.compile(GPT2_SPLIT_PATTERN)

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


class Tokenizer(ABC):
    kind: str

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @abstractmethod
    def encode(self, text: str) -> list[int]: ...

    @abstractmethod
    def decode(self, ids) -> str:
        """ids: list of ints or 1-D tensor. Ids the tokenizer does not have (a model's padded
        vocabulary) decode to '�' rather than crashing a sample."""

    @abstractmethod
    def _label(self, i: int) -> str: ...

    @abstractmethod
    def to_dict(self) -> dict: ...

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


# ----------------------------------------------------------------------------- char


class CharTokenizer(Tokenizer):
    """One token per character. ids follow the order of `chars` (sorted when built from text)."""

    kind = "char"

    def __init__(self, chars: str, unknown: str = "error"):
        if not isinstance(chars, str) or not chars:
            raise TokenizerError("A character tokenizer needs at least one character.")
        if len(set(chars)) != len(chars):
            raise TokenizerError("The character list of a char tokenizer has repeated characters.")
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
        return cls("".join(sorted(set(text))), **kwargs)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str, unknown: str | None = None) -> list[int]:
        """unknown: "error" (default) or "replace" (unseen characters become `self.replacement`)."""
        stoi = self.stoi
        try:
            return [stoi[c] for c in text]  # the fast path: a dict lookup per character
        except KeyError:
            pass
        missing = list(dict.fromkeys(c for c in text if c not in stoi))  # in order of appearance
        mode = unknown or self.unknown
        if mode == "replace":
            r = stoi[self.replacement]
            return [stoi.get(c, r) for c in text]
        if mode != "error":
            raise ConfigError(f'unknown must be "error" or "replace", not {mode!r}.')
        shown = ", ".join(repr(c) for c in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise TokenizerError(
            f"The prompt uses characters this model never saw: {shown}{more}. "
            "Remove them or turn on replacement."
        )

    def decode(self, ids) -> str:
        itos, n = self.itos, len(self.itos)
        return "".join(itos[i] if i < n else "�" for i in _as_id_list(ids))

    def _label(self, i: int) -> str:
        return visible(self.itos[i])

    def to_dict(self) -> dict:
        return {"kind": "char", "chars": self.chars}


# ----------------------------------------------------------------------------- gpt2


@functools.lru_cache(maxsize=1)
def gpt2_encoding() -> tiktoken.Encoding:
    """GPT-2's tokenizer built from the bundled ranks file: no download (~0.2 s, done once)."""
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=GPT2_SPLIT_PATTERN,
        mergeable_ranks=tiktoken.load.load_tiktoken_bpe(str(GPT2_RANKS_FILE)),
        special_tokens={ENDOFTEXT: GPT2_VOCAB_SIZE - 1},
        explicit_n_vocab=GPT2_VOCAB_SIZE,
    )


class _TiktokenTokenizer(Tokenizer):
    """Shared by gpt2 and bpe: both are byte-level BPE run by tiktoken."""

    enc: tiktoken.Encoding

    @property
    def vocab_size(self) -> int:
        return self.enc.n_vocab

    def encode(self, text: str) -> list[int]:
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


class GPT2Tokenizer(_TiktokenTokenizer):
    kind = "gpt2"

    def __init__(self):
        self.enc = gpt2_encoding()

    def to_dict(self) -> dict:
        return {"kind": "gpt2"}  # the ranks ship with the package


# ----------------------------------------------------------------------------- bpe


def _merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of `pair` in ids (left to right) with new_id."""
    out, i, n = [], 0, len(ids)
    while i < n:
        if i < n - 1 and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_bpe(text: str, vocab_size: int) -> list[tuple[int, int]]:
    """Learn byte-level BPE merges on text: the ordered list of (id_a, id_b); merge i makes id 256+i.

    Instead of rescanning the whole text for every merge, we count each distinct chunk once
    (the word " the" appears thousands of times but is merged once, weighted by its count)
    and after a merge update only the pair counts of the chunks that contained the pair.
    """
    if not isinstance(vocab_size, int) or not BPE_MIN_VOCAB <= vocab_size <= BPE_MAX_VOCAB:
        raise ConfigError(
            f"The BPE vocab_size must be a whole number from {BPE_MIN_VOCAB} to {BPE_MAX_VOCAB}, "
            f"not {vocab_size!r}."
        )
    if not text:
        raise ConfigError("BPE needs some text to learn its merges from, but the text is empty.")

    chunk_counts = Counter(_SPLIT.findall(text))
    words = [list(w.encode("utf-8")) for w in chunk_counts]  # each distinct chunk as byte ids
    freqs = list(chunk_counts.values())

    pair_counts: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> chunks that (may) contain it
    for w, (ids, f) in enumerate(zip(words, freqs)):
        for pair in zip(ids, ids[1:]):
            pair_counts[pair] += f
            where[pair].add(w)

    # max-heap of (-count, a, b): ties go to the smallest pair ids, so training is deterministic.
    # Entries go stale when a count drops; we notice when one is popped and push it back corrected.
    heap = [(-c, a, b) for (a, b), c in pair_counts.items()]
    heapq.heapify(heap)
    token_bytes = [bytes([i]) for i in range(256)]
    known = set(token_bytes)
    merges: list[tuple[int, int]] = []

    while len(token_bytes) < vocab_size and heap:
        neg, a, b = heapq.heappop(heap)
        pair, count = (a, b), pair_counts.get((a, b), 0)
        if count <= 0:
            continue
        if -neg != count:  # stale entry
            heapq.heappush(heap, (-count, a, b))
            continue
        new_bytes = token_bytes[a] + token_bytes[b]
        if new_bytes in known:
            # e.g. ("a","bc") when "abc" was already made from ("ab","c"): tiktoken needs each
            # byte string to have one id, so we never learn it twice. Drop the pair for good.
            continue

        new_id = len(token_bytes)
        merges.append(pair)
        token_bytes.append(new_bytes)
        known.add(new_bytes)
        for w in where.pop(pair):
            old = words[w]
            new = _merge(old, pair, new_id)
            if len(new) == len(old):
                continue  # the pair was merged away in this chunk by an earlier merge
            words[w] = new
            delta = Counter(zip(new, new[1:]))
            delta.subtract(Counter(zip(old, old[1:])))
            f = freqs[w]
            for p, d in delta.items():
                if d == 0:
                    continue
                pair_counts[p] += d * f
                if d > 0:  # only pairs with new_id grow: push them now, they may be the next best
                    where[p].add(w)
                    heapq.heappush(heap, (-pair_counts[p], p[0], p[1]))
        pair_counts.pop(pair, None)
    return merges


class BPETokenizer(_TiktokenTokenizer):
    """Byte-level BPE: ids 0..255 are raw bytes, merge i creates id 256+i.

    `merges` keeps the learned order so the app can replay them one by one (`replay`).
    Encoding itself is done by tiktoken, from the same ranks, so it is fast.
    If the text has too few distinct pairs, training stops early and vocab_size is what
    was learned (smaller than asked).
    """

    kind = "bpe"

    def __init__(self, merges):
        self.merges: list[tuple[int, int]] = []
        self._bytes = [bytes([i]) for i in range(256)]
        ranks = {b: i for i, b in enumerate(self._bytes)}
        for a, b in merges:
            new_id = len(self._bytes)
            ok = all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < new_id for x in (a, b))
            if not ok:
                raise CheckpointError(f"BPE merge {new_id - 256} refers to tokens that do not exist yet: {[a, b]}.")
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

    def token_bytes(self, i: int) -> bytes:
        return self._bytes[i]

    def replay_chunks(self, text: str, n_merges: int | None = None) -> list[list[int]]:
        """Ids of each chunk of text when the tokenizer knows only its first n_merges merges.

        The BPE rule, in plain Python (tiktoken does the same in Rust): in each chunk, keep
        joining the neighbouring pair whose merge was learned earliest, until none is left.
        n_merges=0 gives the raw bytes; n_merges=None (all) gives exactly encode(text).
        """
        n = len(self.merges) if n_merges is None else max(0, min(int(n_merges), len(self.merges)))
        limit = 256 + n  # ids below this are known
        out = []
        for chunk in _SPLIT.findall(text):
            data = chunk.encode("utf-8")
            if self.ranks.get(data, limit) < limit:  # tiktoken's shortcut: the whole chunk is one token
                out.append([self.ranks[data]])
                continue
            parts = [bytes([b]) for b in data]
            while len(parts) > 1:
                best, at = limit, -1
                for i in range(len(parts) - 1):
                    r = self.ranks.get(parts[i] + parts[i + 1], limit)
                    if r < best:  # strict: the leftmost pair wins a tie
                        best, at = r, i
                if at < 0:
                    break
                parts[at:at + 2] = [parts[at] + parts[at + 1]]
            out.append([self.ranks[p] for p in parts])
        return out

    def replay(self, text: str, n_merges: int | None = None) -> list[int]:
        """Ids of text after only the first n_merges merges (all of them: same as encode)."""
        return [i for chunk in self.replay_chunks(text, n_merges) for i in chunk]

    def to_dict(self) -> dict:
        return {"kind": "bpe", "merges": [[a, b] for a, b in self.merges]}


# ----------------------------------------------------------------------------- factory


def build(kind: str, text: str | None = None, vocab_size: int | None = None) -> Tokenizer:
    """Make a tokenizer. char and bpe learn from text; gpt2 is fixed. vocab_size is for bpe."""
    if kind == "gpt2":
        return GPT2Tokenizer()
    if kind == "char":
        return CharTokenizer.from_text(text or "")
    if kind == "bpe":
        return BPETokenizer.train(text or "", DEFAULT_BPE_VOCAB if vocab_size is None else vocab_size)
    raise ConfigError(f"Unknown tokenizer {kind!r}. Choose one of: {', '.join(KINDS)}.")


def from_dict(d: dict) -> Tokenizer:
    """Rebuild a tokenizer saved with `to_dict()` (e.g. inside a checkpoint)."""
    kind = d.get("kind") if isinstance(d, dict) else None
    try:
        if kind == "gpt2":
            return GPT2Tokenizer()
        if kind == "char" and isinstance(d.get("chars"), str):
            return CharTokenizer(d["chars"])
        if kind == "bpe" and isinstance(d.get("merges"), list):
            if not all(isinstance(m, (list, tuple)) and len(m) == 2 for m in d["merges"]):
                raise CheckpointError("Each BPE merge must be a pair of token ids.")
            return BPETokenizer(d["merges"])
    except GptvizError as e:
        raise CheckpointError(f"The saved tokenizer is damaged: {e}") from None
    raise CheckpointError(
        f"The saved tokenizer is damaged or unknown: expected a dict with kind one of {', '.join(KINDS)} "
        f"and its data (char: 'chars', bpe: 'merges'), got {str(d)[:80]!r}."
    )
