"""Head detectors: which attention heads do a job we can name?

For every head and detector, a score in [0, 1]: the share of the head's attention that lands where
the job says it should (TransformerLens's detectors, same definitions).

    scores = head_scores(model, tokens=data.val)   # {"previous_token": (n_layer, n_head), ...}
    badges = label_heads(scores)                   # {(1, 0): "induction", (0, 1): "prev · sink", ...}

Previous-token and first-token heads are measured on real text (when `tokens` is given); duplicate-token
and induction heads on random tokens repeated twice, where copying is the only way to predict the second
half, so a head that does it cannot be explained by the statistics of a language.
"""

from __future__ import annotations

import torch

from .errors import ConfigError
from .model import GPT

# Ordered as the lecture meets them: position-based jobs first, then the two that read the content.
DETECTORS: dict[str, str] = {
    "previous_token": "looks at the token just before the current one — "
                      "how a model keeps track of what came right before",
    "first_token": "looks at the very first token (an 'attention sink') — "
                   "a place to park attention when nothing else in the prompt is useful",
    "duplicate_token": "looks at earlier copies of the current token — "
                       "how a model notices that a token has already appeared in the prompt",
    "induction": "looks at the token that came after the previous occurrence of the current token — "
                 "how a model continues a pattern it has seen earlier in the prompt",
}
BADGES: dict[str, str] = {"previous_token": "prev", "first_token": "sink", "duplicate_token": "dup",
                          "induction": "induction"}
DEFAULT_THRESHOLD = 0.4


# ----------------------------------------------------------------------------- inputs


def repeated_random_tokens(vocab_ids, seq_len: int, n_seqs: int,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """(n_seqs, 2 * seq_len) rows [r_0 .. r_{n-1}, r_0 .. r_{n-1}] of random ids drawn from vocab_ids.

    When there are enough ids, no id appears twice within a half: every token of the second half then
    has exactly one earlier copy, so "the token after the previous occurrence" is unambiguous.
    """
    vocab_ids = torch.as_tensor(vocab_ids, dtype=torch.long).flatten().cpu()
    if len(vocab_ids) == 0:
        raise ConfigError("Random token sequences need at least one token id to draw from.")
    if seq_len < 1 or n_seqs < 1:
        raise ConfigError(f"seq_len and n_seqs must be at least 1 (got {seq_len} and {n_seqs}).")
    if seq_len <= len(vocab_ids):  # a random permutation per row, cut to seq_len: no repeats
        picks = torch.rand(n_seqs, len(vocab_ids), generator=generator).argsort(dim=1)[:, :seq_len]
    else:  # a tiny vocabulary: repeats within a half cannot be avoided
        picks = torch.randint(len(vocab_ids), (n_seqs, seq_len), generator=generator)
    half = vocab_ids[picks]
    return torch.cat([half, half], dim=1)


def _text_windows(tokens: torch.Tensor, block_size: int, n_seqs: int, generator: torch.Generator) -> torch.Tensor:
    """(n_seqs, T) random windows of real text, T = block_size (or the whole text if it is shorter)."""
    T = min(block_size, len(tokens))
    starts = torch.randint(len(tokens) - T + 1, (n_seqs,), generator=generator)
    return tokens[starts[:, None] + torch.arange(T)]


@torch.no_grad()
def _patterns(model: GPT, idx: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's attention pattern (B, n_head, T, T) for idx, in eval mode (no dropout)."""
    names = [f"blocks.{i}.attn.pattern" for i in range(model.config.n_layer)]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        _, cache = model.run_with_cache(idx.to(device), names)
    finally:
        model.train(was_training)
    return [cache[name].float().cpu() for name in names]


# ----------------------------------------------------------------------------- scores of one layer
# Each takes a pattern (B, n_head, T, T) and returns (n_head,): attention averaged over batch and queries.


def previous_token_score(pattern: torch.Tensor) -> torch.Tensor:
    """Mean attention from position i to i - 1, over i >= 1."""
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, -1))  # entries [i + 1, i]


def first_token_score(pattern: torch.Tensor) -> torch.Tensor:
    """Mean attention to position 0, over i >= 1 (row 0 can only look at position 0: no information)."""
    return pattern[:, :, 1:, 0].mean(dim=(0, -1))


def duplicate_token_score(pattern: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Mean attention to earlier copies of the current token, over the queries that have one."""
    T = idx.shape[1]
    earlier = torch.ones(T, T, dtype=torch.bool).tril(diagonal=-1)
    same = (idx[:, :, None] == idx[:, None, :]) & earlier  # (B, T, T): key is an earlier copy of the query
    has_copy = same.any(dim=-1)  # (B, T)
    if not has_copy.any():
        raise ConfigError("The duplicate-token score needs sequences in which some token repeats.")
    mass = (pattern * same[:, None]).sum(dim=-1)  # (B, n_head, T)
    return (mass * has_copy[:, None]).sum(dim=(0, 2)) / has_copy.sum()


def induction_score(pattern: torch.Tensor) -> torch.Tensor:
    """On [r_0..r_{n-1}, r_0..r_{n-1}]: mean attention from n + i to i + 1, over the second half."""
    n = pattern.shape[-1] // 2
    # the diagonal at offset 1 - n holds entries [n - 1 + j, j]; from j = 1 on they are [n + i, i + 1]
    return pattern.diagonal(offset=1 - n, dim1=-2, dim2=-1)[..., 1:].mean(dim=(0, -1))


# ----------------------------------------------------------------------------- the whole model


@torch.no_grad()
def head_scores(model: GPT, tokens: torch.Tensor | None = None, seq_len: int | None = None,
                n_seqs: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every detector's score for every head: {name: (n_layer, n_head)} in DETECTORS order, on the CPU.

    tokens: a 1-D tensor of real text ids (e.g. data.val). Previous/first-token scores are measured on
    random windows of it, and the repeated random sequences use only ids that occur in it (so a char
    model sees real characters). Without it, everything is measured on the repeated random sequences.
    seq_len: length of each half of a repeated sequence (default block_size // 2).
    """
    cfg = model.config
    if cfg.n_layer == 0:  # a bigram model has no heads
        return {name: torch.zeros(0, 0) for name in DETECTORS}
    seq_len = cfg.block_size // 2 if seq_len is None else seq_len
    if not 2 <= seq_len <= cfg.block_size // 2:
        raise ConfigError(
            f"Head detectors repeat a random sequence twice, so each half needs 2 to block_size // 2 = "
            f"{cfg.block_size // 2} tokens (got {seq_len}). Models with block_size below 4 cannot be tested."
        )
    generator = torch.Generator().manual_seed(seed)

    if tokens is not None:
        tokens = torch.as_tensor(tokens, dtype=torch.long).flatten().cpu()
        if len(tokens) and int(tokens.max()) >= cfg.vocab_size:
            raise ConfigError(f"The text has token ids up to {int(tokens.max())}, but the model knows only "
                              f"{cfg.vocab_size} tokens: was it tokenized for another model?")
    has_text = tokens is not None and len(tokens) >= 2
    vocab_ids = torch.unique(tokens) if has_text else torch.arange(cfg.vocab_size)
    repeated = repeated_random_tokens(vocab_ids, seq_len, n_seqs, generator)
    text = _text_windows(tokens, cfg.block_size, n_seqs, generator) if has_text else repeated

    rep_patterns = _patterns(model, repeated)
    text_patterns = _patterns(model, text) if has_text else rep_patterns
    scores = {
        "previous_token": [previous_token_score(p) for p in text_patterns],
        "first_token": [first_token_score(p) for p in text_patterns],
        "duplicate_token": [duplicate_token_score(p, repeated) for p in rep_patterns],
        "induction": [induction_score(p) for p in rep_patterns],
    }
    # attention rows sum to 1, so every score is in [0, 1] up to rounding
    return {name: torch.stack(rows).clamp(0.0, 1.0) for name, rows in scores.items()}


def label_heads(scores: dict[str, torch.Tensor], threshold: float = DEFAULT_THRESHOLD,
                max_badges: int = 2) -> dict[tuple[int, int], str]:
    """A short badge for each head with a score of at least threshold: {(layer, head): "induction · dup"}.

    At most max_badges badges per head, strongest first; heads that do nothing recognisable are left out.
    """
    names = [name for name in DETECTORS if name in scores]
    if not names:
        return {}
    n_layer, n_head = scores[names[0]].shape
    labels = {}
    for layer in range(n_layer):
        for head in range(n_head):
            hits = [(float(scores[name][layer, head]), name) for name in names]
            hits = sorted((h for h in hits if h[0] >= threshold), key=lambda h: -h[0])  # stable: ties keep order
            if hits:
                labels[(layer, head)] = " · ".join(BADGES[name] for _, name in hits[:max_badges])
    return labels
