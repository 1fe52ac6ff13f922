"""Turning logits into text: temperature, top-k, top-p, and a step-by-step sampler.

`sample_steps` yields every step's full next-token distribution, so the app can draw
the bars the model chose from. With `kv_cache=True` the keys and values of earlier tokens
are remembered instead of recomputed; inside the block window this is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch.nn import functional as F

from .errors import ConfigError, InputError
from .model import GPT, KVCache


def next_token_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                     top_p: float | None = None) -> torch.Tensor:
    """Probabilities over the vocabulary from the last position's logits (..., vocab).

    temperature 0 means greedy: all probability on the most likely token.
    top_k keeps the k most likely tokens; top_p keeps the smallest set whose mass reaches p.
    """
    if temperature < 0:
        raise ConfigError(f"temperature must be 0 or more (got {temperature}).")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ConfigError(f"top_p must be in (0, 1] (got {top_p}).")
    logits = logits.float()
    if temperature == 0:
        return F.one_hot(logits.argmax(-1), logits.size(-1)).float()
    logits = logits / temperature
    if top_k is not None and 0 < top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = F.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        # drop a token when the tokens before it already reach top_p (the first one always stays)
        drop_sorted = (sorted_p.cumsum(-1) - sorted_p) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def fit_to_window(ids: list[int], block_size: int, room: int = 0) -> list[int]:
    """The last tokens of a prompt that fit a model's window, leaving `room` for tokens it will write.

    A model sees at most block_size tokens; the end of a prompt is what its next token depends on.
    At least one prompt token stays, however much room is asked for.
    """
    return ids[-max(block_size - room, 1):]


@dataclass
class Step:
    token: int  # the sampled token
    probs: torch.Tensor  # (vocab,) the distribution it was sampled from, after temperature/top-k/top-p
    context_length: int  # how many tokens the model saw for this prediction


@torch.inference_mode()
def sample_steps(model: GPT, prompt: list[int], max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 kv_cache: bool = True) -> Iterator[Step]:
    """Generate one token at a time, yielding each choice with its distribution.

    Past block_size tokens the model can only see the most recent window. Without a cache that
    window slides by one token per step (nanoGPT). With a cache, learned position embeddings make
    remembered keys stale once the window slides, so the cache is rebuilt from the last 3/4 of the
    window whenever it is full: each prediction still sees between 3/4 and all of a window.
    """
    if not prompt:
        raise InputError("The prompt is empty: type at least one character.")
    device = next(model.parameters()).device
    block_size = model.config.block_size
    gen = torch.Generator(device="cpu")
    if seed is not None:
        gen.manual_seed(seed)
    else:
        gen.seed()
    was_training = model.training
    model.eval()
    tokens = list(prompt)
    cache, pending = None, []  # pending: tokens the cache has not seen yet
    try:
        for _ in range(max_new_tokens):
            if not kv_cache:
                context = tokens[-block_size:]
                logits, _ = model(torch.tensor([context], device=device))
            else:
                if cache is None or cache.length + len(pending) > block_size:
                    keep = block_size if cache is None else max(1, block_size * 3 // 4)
                    cache, pending = KVCache(model.config.n_layer, block_size), tokens[-keep:]
                logits, _ = model(torch.tensor([pending], device=device), kv_cache=cache)
                context = tokens[-cache.length:]
            probs = next_token_probs(logits[0, -1], temperature, top_k, top_p)
            token = int(torch.multinomial(probs.cpu(), 1, generator=gen))
            tokens.append(token)
            pending = [token]
            yield Step(token=token, probs=probs.cpu(), context_length=len(context))
    finally:
        model.train(was_training)


def generate(model: GPT, prompt: list[int], max_new_tokens: int, **settings) -> list[int]:
    """The new tokens only (the prompt is not repeated)."""
    return [step.token for step in sample_steps(model, prompt, max_new_tokens, **settings)]
