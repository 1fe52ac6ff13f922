"""Text in, batches out: load and check a text, tokenize it once, sample training batches.

    data = TokenData.from_corpus("tinyshakespeare", "char")
    x, y = data.get_batch("train", batch_size=32, block_size=64)   # y is x shifted by one
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from .errors import ConfigError, InputError
from .tokenizers import Tokenizer, build

_CORPUS_DIR = Path(__file__).parent / "corpora"
REPEATED_CORPUS = "shakespeare_repeated"
# A bundled corpus is a file, or a function that makes its text from one (same text every time).
CORPORA = {
    "tinyshakespeare": _CORPUS_DIR / "tinyshakespeare.txt",
    "wizard_of_oz": _CORPUS_DIR / "wizard_of_oz.txt",
    REPEATED_CORPUS: lambda: repeated_chunks(corpus_text("tinyshakespeare")),
}
DEFAULT_CORPUS = "tinyshakespeare"
CHUNK_LENGTHS = (6, 16)  # shortest and longest chunk of repeated_chunks, in characters

MAX_TEXT_BYTES = 10 * 1024 * 1024  # the app's upload limit and the CLI's: plenty for a small GPT
MB = 1024 * 1024

# First bytes of common binary files students upload by mistake.
_MAGIC = [
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or a .docx/.xlsx/.pt file, which are ZIPs inside)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x7fELF", "a program"),
]


def load_text(source: bytes | str | Path, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """Read a text (bytes of an upload, or a file path) and check that a GPT can learn from it.

    Returns the text decoded from UTF-8, without BOM and with Windows line ends turned into "\\n".
    Raises InputError with a message for the student when the text cannot be used.
    """
    if isinstance(source, (bytes, bytearray)):
        what, data = "The uploaded file", bytes(source)
        _check_size(what, len(data), max_bytes)
    else:
        path = Path(source)
        what = f"The file '{path}'"
        if not path.is_file():
            raise InputError(f"{what} does not exist (or is a folder, not a file).")
        _check_size(what, path.stat().st_size, max_bytes)  # before reading a huge file into memory
        data = path.read_bytes()

    if not data:
        raise InputError(f"{what} is empty. A GPT needs some text to learn from.")
    for magic, name in _MAGIC:
        if data.startswith(magic):
            raise InputError(f"{what} looks like {name}, not text. Use a plain text (.txt) file.")

    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 (Windows Notepad's "Unicode"): accept it
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise InputError(f"{what} starts like UTF-16 text but cannot be decoded. Save it as UTF-8.") from None
    else:
        if b"\x00" in data:
            raise InputError(f"{what} contains NUL bytes, so it looks like a binary file, not text. "
                             "Use a plain text (.txt) file.")
        try:
            text = data.decode("utf-8-sig")  # -sig: drop the byte order mark some editors add
        except UnicodeDecodeError as e:
            raise InputError(
                f"{what} is not UTF-8 text: the byte 0x{data[e.start]:02X} at position {e.start} "
                "cannot be decoded. Save the file with the UTF-8 encoding (in most editors: "
                "Save As, Encoding: UTF-8) and try again."
            ) from None

    text = text.lstrip("\ufeff").replace("\r\n", "\n")
    if not text.strip():
        raise InputError(f"{what} has only spaces and line breaks. A GPT needs some text to learn from.")
    if len(set(text)) < 2:
        raise InputError(f"{what} uses only one character ({text[0]!r}). The text needs at least two "
                         "different characters to learn anything.")
    return text


def _check_size(what: str, size: int, max_bytes: int):
    if size > max_bytes:
        raise InputError(f"{what} is {size / MB:.1f} MB, larger than the limit of {max_bytes / MB:.0f} MB. "
                         "Use a shorter text: a few MB is plenty for a small GPT.")


@functools.lru_cache(maxsize=None)
def corpus_text(name: str) -> str:
    """The text of a bundled corpus, by name (see CORPORA)."""
    if name not in CORPORA:
        raise InputError(f"Unknown corpus {name!r}. The bundled corpora are: {', '.join(CORPORA)}.")
    source = CORPORA[name]
    return source() if callable(source) else load_text(source)


def repeated_chunks(text: str, lengths: tuple[int, int] = CHUNK_LENGTHS, seed: int = 0) -> str:
    """A text where copying pays: `text` cut into chunks of random length (lengths[0] to lengths[1]
    characters, line breaks turned into spaces), each chunk followed by its copy and a line break.

    Varying lengths matter: with one fixed length a model learns "look that many back" instead of an
    induction head (a head that finds the token after the previous copy of the current one).
    """
    low, high = lengths
    if not 1 <= low <= high:
        raise ConfigError(f"Chunk lengths must be 1 <= shortest <= longest (got {low} and {high}).")
    flat = text.replace("\n", " ")
    sizes = torch.randint(low, high + 1, (len(flat) // low + 1,), generator=torch.Generator().manual_seed(seed))
    ends = torch.cumsum(sizes, 0).tolist()
    starts = [0] + ends[:-1]
    chunks = [flat[a:b] for a, b in zip(starts, ends) if b <= len(flat)]
    return "".join(f"{c}{c}\n" for c in chunks)


class TokenData:
    """A text tokenized once into a 1-D tensor, split into train (first 90%) and val (last 10%)."""

    def __init__(self, text: str, tokenizer: Tokenizer, val_fraction: float = 0.1):
        if not 0 < val_fraction < 1:
            raise ConfigError(f"val_fraction must be between 0 and 1 (e.g. 0.1), not {val_fraction}.")
        self.tokenizer = tokenizer
        self.tokens = torch.tensor(tokenizer.encode(text), dtype=torch.long)
        n = int(len(self.tokens) * (1 - val_fraction))
        self.train = self.tokens[:n]  # views, no copies
        self.val = self.tokens[n:]

    @classmethod
    def from_text(cls, text: str, tokenizer: Tokenizer | str = "char", vocab_size: int | None = None,
                  val_fraction: float = 0.1) -> TokenData:
        """tokenizer: a Tokenizer, or a kind ("char", "gpt2", "bpe") to build on this text."""
        if isinstance(tokenizer, str):
            tokenizer = build(tokenizer, text=text, vocab_size=vocab_size)
        return cls(text, tokenizer, val_fraction)

    @classmethod
    def from_corpus(cls, name: str = DEFAULT_CORPUS, tokenizer: Tokenizer | str = "char",
                    vocab_size: int | None = None, val_fraction: float = 0.1) -> TokenData:
        return cls.from_text(corpus_text(name), tokenizer, vocab_size, val_fraction)

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def split(self, name: str) -> torch.Tensor:
        if name == "train":
            return self.train
        if name == "val":
            return self.val
        raise ConfigError(f'The split must be "train" or "val", not {name!r}.')

    def check_block_size(self, block_size: int):
        """Both splits need at least one full (x, y) window: block_size + 1 tokens."""
        for name, part in (("training", self.train), ("validation", self.val)):
            if len(part) < block_size + 1:
                raise InputError(
                    f"The text is too short for block_size {block_size}: the {name} part has {len(part)} "
                    f"tokens, it needs at least {block_size + 1}. Use a longer text or a smaller block_size."
                )

    def get_batch(self, split: str, batch_size: int, block_size: int,
                  generator: torch.Generator | None = None, device: str | torch.device = "cpu"):
        """batch_size random windows of block_size tokens: x (B, T) and targets y (B, T), y = x shifted by one."""
        data = self.split(split)
        if len(data) < block_size + 1:
            self.check_block_size(block_size)  # raises with the numbers
        ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator)  # window starts
        pos = ix[:, None] + torch.arange(block_size)  # (B, T) positions, one row per window
        x, y = data[pos], data[pos + 1]
        return x.to(device), y.to(device)
