"""Induction heads: the recipe that grows one in class, the in-context-learning score, and every head's
detector scores along a training timeline (where the phase change shows).

    config, cfg = recipe(vocab_size)                       # the `induction` preset's model and training
    line = timeline_scores(config, snapshots, data.val)    # {"steps", "scores": {name: (S, L, H)}, "icl"}
    formation_step(line)                                   # the first step with an induction head, or None

An induction head attends to the token after the previous occurrence of the current token (it needs a
previous-token head in a layer below). It lets a model predict the second copy of a sequence it has never
seen: the in-context-learning score is how much better, in nats, the second copy is predicted than the first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import detectors
from .data import CHUNK_LENGTHS, REPEATED_CORPUS
from .model import GPT, GPTConfig, preset_config
from .train import TrainConfig

PRESET = "induction"
CHUNKS = CHUNK_LENGTHS
# The recipe measured in docs/induction.md: fastest to an induction score of 0.5 on this host.
RECIPE = dict(corpus=REPEATED_CORPUS, block_size=32, batch_size=32, learning_rate=3e-3, max_iters=2000,
              eval_interval=200, snapshot_every=50, weight_decay=0.0)
NOTE = ("Trains on *Repeated Shakespeare* (chunks of {0}–{1} characters, each said twice), where copying pays. "
        "Watch the loss: it stalls near 2.4, then drops again when an induction head forms (about step 700 of "
        "2,000). Measured on this server (8 Dec 2026, busy): {2}. Then open the **Attention** page and slide "
        "its training step across the drop.").format(
            *CHUNKS, "the 2,000 steps took 62 s from the click; the induction score passed 0.5 at step 950, "
            "about 32 s in")
_TRAIN_FIELDS = ("batch_size", "learning_rate", "max_iters", "eval_interval", "snapshot_every", "seed", "weight_decay")


def recipe(vocab_size: int, **changes) -> tuple[GPTConfig, TrainConfig]:
    """The induction preset's model and training config; `changes` override any field of either."""
    values = {**RECIPE, **changes}
    model_fields = {k: v for k, v in values.items() if k not in _TRAIN_FIELDS and k != "corpus"}
    block = model_fields.pop("block_size")
    config = preset_config(PRESET, vocab_size, block, **{k: _as_bool(k, v) for k, v in model_fields.items()})
    cfg = TrainConfig(**{k: values[k] for k in _TRAIN_FIELDS if k in values})
    return config, cfg


SNAPSHOT_BYTES = 32 * 2**20  # what a dense timeline may hold (fp16 snapshots), whatever the sliders say


def dense_every(n_params: int, max_iters: int, every: int) -> int:
    """A snapshot every `every` steps, spaced wider when that would hold more than SNAPSHOT_BYTES; 0 (only the
    log-spaced ones) when fewer than ten snapshots would fit."""
    fits = SNAPSHOT_BYTES // max(2 * n_params, 1)
    if every <= 0 or fits < 10:
        return 0
    return max(every, -(-max_iters // fits))


def _as_bool(name: str, value):
    return bool(value) if name in ("mlp", "pos_embd", "residual", "layernorm") else value


def repeated_sequences(config: GPTConfig, tokens: torch.Tensor | None, n_seqs: int = 16, seed: int = 1) -> torch.Tensor:
    """(n_seqs, 2 * n) random token sequences repeated twice, n = block_size // 2, from the ids of `tokens`."""
    has_text = tokens is not None and len(tokens) > 0
    ids = torch.unique(torch.as_tensor(tokens)) if has_text else torch.arange(config.vocab_size)
    return detectors.repeated_random_tokens(ids, max(config.block_size // 2, 1), n_seqs,
                                            torch.Generator().manual_seed(seed))


@torch.no_grad()
def copy_losses(model: GPT, idx: torch.Tensor) -> tuple[float, float]:
    """Mean loss (nats) on the first copy and on the second copy of rows [r, r] (their first tokens left out:
    nothing can predict a random token that starts a copy)."""
    n = idx.shape[1] // 2
    was_training = model.training
    model.eval()
    try:
        logits, _ = model(idx)
    finally:
        model.train(was_training)
    losses = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), idx[:, 1:], reduction="none")  # (B, T-1)
    # losses[:, t - 1] is the loss on token t: the first copy is tokens 1..n-1, the second n+1..2n-1
    return float(losses[:, : n - 1].mean()), float(losses[:, n:].mean())


def icl_score(model: GPT, tokens: torch.Tensor | None = None, n_seqs: int = 16, seed: int = 1) -> float:
    """In-context learning: how many nats better the second copy of a random sequence is predicted than the first."""
    if model.config.block_size < 4:
        return 0.0  # no room for two copies of two tokens
    first, second = copy_losses(model, repeated_sequences(model.config, tokens, n_seqs, seed))
    return first - second


def model_from(config: GPTConfig, weights: dict[str, torch.Tensor]) -> GPT:
    """A model with these weights (a timeline snapshot, fp16 or fp32), without a random initialisation."""
    with torch.device("meta"):
        model = GPT(config)
    model.load_state_dict({k: v.float() for k, v in weights.items()}, assign=True)
    return model.eval()


def timeline_scores(config: GPTConfig, snapshots: dict[int, dict[str, torch.Tensor]],
                    tokens: torch.Tensor | None = None) -> dict:
    """Every detector's score for every head, and the ICL score, at every snapshot step.

    Returns {"steps": [s0, s1, ...], "scores": {detector: tensor (S, n_layer, n_head)}, "icl": [float, ...]}.
    A model without heads (bigram) gets (S, 0, 0) scores; its ICL score is still measured.
    """
    steps = sorted(snapshots)
    per_step, icl = [], []
    for step in steps:
        model = model_from(config, snapshots[step])
        per_step.append(detectors.head_scores(model, tokens=tokens) if config.block_size >= 4 and config.n_layer
                        else {name: torch.zeros(config.n_layer, config.n_head if config.n_layer else 0)
                              for name in detectors.REGISTRY})
        icl.append(icl_score(model, tokens))
    scores = {name: torch.stack([s[name] for s in per_step]) if steps else torch.zeros(0, 0, 0)
              for name in detectors.REGISTRY}
    return {"steps": steps, "scores": scores, "icl": icl}


def formation_step(line: dict, threshold: float = detectors.DEFAULT_THRESHOLD) -> int | None:
    """The first step at which some head's induction score reaches threshold (None: it never does)."""
    induction = line["scores"]["induction"]
    for step, scores in zip(line["steps"], induction):
        if scores.numel() and float(scores.max()) >= threshold:
            return step
    return None


def strongest(line: dict, detector: str, index: int = -1) -> tuple[int, int] | None:
    """(layer, head) with the highest score for detector at the index-th step (default: the last)."""
    scores = line["scores"][detector]
    if not len(line["steps"]) or scores[index].numel() == 0:
        return None
    return divmod(int(scores[index].flatten().argmax()), scores.shape[2])
