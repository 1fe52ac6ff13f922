"""Head detectors: which attention heads do a job we can name?

For every head and detector, a score in [0, 1]: the share of the head's attention that lands where
the job says it should (TransformerLens's detectors, same definitions).

    scores = head_scores(model, tokens=data.val)   # {"previous_token": (n_layer, n_head), ...}
    badges = label_heads(scores)                   # {(1, 0): "induction", (0, 1): "prev · sink", ...}

Previous-token and first-token heads are measured on real text (when `tokens` is given); duplicate-token
and induction heads on random tokens repeated twice, where copying is the only way to predict the second
half, so a head that does it cannot be explained by the statistics of a language.

A new detector is one `register(Detector(...))` call with a `targets` mask builder: the scores, the badges
and the Attention page's list and table all read REGISTRY.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .errors import ConfigError
from .model import GPT


@dataclass(frozen=True)
class Detector:
    """One job a head can do: where each query should look, and how to talk about it.

    targets(idx) gives a (B, T, T) bool mask of the keys each query should attend to for this job;
    the score is the attention that lands there, averaged over the queries that have a target.
    """

    name: str
    badge: str  # the short tag on the attention grid
    caption: str  # one line for students
    reads: str  # "text" (the model's own text) or "repeated" (random tokens repeated twice)
    targets: Callable[[torch.Tensor], torch.Tensor]


REGISTRY: dict[str, Detector] = {}  # in the order the lecture meets them: position-based jobs first
READS = {"text": "on the model's own training text", "repeated": "on random tokens repeated twice"}


def register(detector: Detector) -> Detector:
    REGISTRY[detector.name] = detector
    return detector


def _previous(idx: torch.Tensor) -> torch.Tensor:
    B, T = idx.shape
    return torch.diag(torch.ones(T - 1, dtype=torch.bool), -1).expand(B, T, T)  # [i, i - 1]


def _first(idx: torch.Tensor) -> torch.Tensor:
    B, T = idx.shape
    mask = torch.zeros(T, T, dtype=torch.bool)
    mask[1:, 0] = True  # row 0 can only look at position 0: it tells nothing
    return mask.expand(B, T, T)


def _duplicate(idx: torch.Tensor) -> torch.Tensor:
    T = idx.shape[1]
    earlier = torch.ones(T, T, dtype=torch.bool).tril(diagonal=-1)
    return (idx[:, :, None] == idx[:, None, :]) & earlier  # the key is an earlier copy of the query


def _induction(idx: torch.Tensor) -> torch.Tensor:
    """On [r_0..r_{n-1}, r_0..r_{n-1}]: query n + i looks at i + 1, the token after its first copy."""
    B, T = idx.shape
    n = T // 2
    mask = torch.zeros(T, T, dtype=torch.bool)
    mask[torch.arange(n, 2 * n), torch.arange(1, n + 1)] = True
    return mask.expand(B, T, T)


register(Detector("previous_token", "prev", "looks at the token just before the current one — "
                  "how a model keeps track of what came right before", "text", _previous))
register(Detector("first_token", "sink", "looks at the very first token (an 'attention sink') — "
                  "a place to park attention when nothing else in the prompt is useful", "text", _first))
register(Detector("duplicate_token", "dup", "looks at earlier copies of the current token — "
                  "how a model notices that a token has already appeared in the prompt", "repeated", _duplicate))
register(Detector("induction", "induction", "looks at the token that came after the previous occurrence of the "
                  "current token — how a model continues a pattern it has seen earlier in the prompt", "repeated",
                  _induction))

# Read-only views of the registry, for pages and tests.
DETECTORS: dict[str, str] = {name: d.caption for name, d in REGISTRY.items()}
BADGES: dict[str, str] = {name: d.badge for name, d in REGISTRY.items()}
DEFAULT_THRESHOLD = 0.4


def measured_on() -> str:
    """'previous_token and first_token on ...; duplicate_token and induction on ...' for a caption."""
    parts = []
    for reads, where in READS.items():
        names = [d.badge for d in REGISTRY.values() if d.reads == reads]
        if names:
            parts.append(f"{' and '.join(names)} {where}")
    return "; ".join(parts)


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


def score(pattern: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(n_head,): attention landing on targets (B, T, T), averaged over batch and the queries that have one."""
    has_target = targets.any(dim=-1)  # (B, T)
    if not has_target.any():
        raise ConfigError("These sequences give no query anything to look for (e.g. no token repeats).")
    mass = (pattern * targets[:, None]).sum(dim=-1)  # (B, n_head, T)
    return (mass * has_target[:, None]).sum(dim=(0, 2)) / has_target.sum()


def duplicate_token_score(pattern: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Mean attention to earlier copies of the current token, over the queries that have one."""
    return score(pattern, _duplicate(idx))


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
        return {name: torch.zeros(0, 0) for name in REGISTRY}
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
    inputs = {"text": (text, text_patterns), "repeated": (repeated, rep_patterns)}
    scores = {}
    for name, detector in REGISTRY.items():
        idx, patterns = inputs[detector.reads]
        targets = detector.targets(idx)
        # attention rows sum to 1, so every score is in [0, 1] up to rounding
        scores[name] = torch.stack([score(p, targets) for p in patterns]).clamp(0.0, 1.0)
    return scores


def label_heads(scores: dict[str, torch.Tensor], threshold: float = DEFAULT_THRESHOLD,
                max_badges: int = 2) -> dict[tuple[int, int], str]:
    """A short badge for each head with a score of at least threshold: {(layer, head): "induction · dup"}.

    At most max_badges badges per head, strongest first; heads that do nothing recognisable are left out.
    """
    names = [name for name in REGISTRY if name in scores]
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
