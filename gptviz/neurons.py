"""MLP neurons: which fire on a prompt, and where in a text each fires most.

    index = scan(model, data.val)                      # one pass over the text, every layer at once
    index.top(layer=1, neuron=42)                      # [(activation, position), ...] highest first
    contexts(index, data.val, tok, layer=1, neuron=42)  # the text around each of those positions

A neuron is one of the 4 * n_embd numbers after the MLP's GELU (`blocks.{i}.mlp.hidden`). The text is
read in consecutive windows of block_size tokens, as the model reads it in training, so a token's
activation is what the model computes with the window's earlier tokens as context. The scan costs one
forward pass over the text (linear in its length); its result is small (k positions per neuron) and is
cached per model fingerprint.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from .errors import ConfigError
from .model import GPT
from .tokenizers import Tokenizer

TOP_K = 10  # contexts kept per neuron
MAX_TOKENS = 1 << 15  # the scan reads at most this much of a text: ~1 s for the bundled model
WINDOWS_PER_BATCH = 64


def hidden_name(layer: int) -> str:
    return f"blocks.{layer}.mlp.hidden"


def check_layer(model: GPT, layer: int):
    cfg = model.config
    if not cfg.mlp or cfg.n_layer == 0:
        raise ConfigError("This model has no MLP layers: train one with the MLP switched on "
                          "(the *blocks* or *gpt* preset).")
    if not 0 <= layer < cfg.n_layer:
        raise ConfigError(f"There is no layer {layer} in this model (it has {cfg.n_layer}).")


def fingerprint(model: GPT) -> str:
    """A short hash of the model's settings and weights: the same weights give the same scan."""
    h = hashlib.sha256(repr(model.config).encode())
    for name, p in model.state_dict().items():
        h.update(name.encode())
        h.update(p.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def prompt_neurons(cache: dict, layer: int, k: int = 10) -> list[tuple[int, float, int]]:
    """(neuron, highest activation on the prompt, position where it fired) for the k strongest neurons."""
    hidden = cache[hidden_name(layer)][0]  # (T, n_neurons)
    best, where = hidden.max(dim=0)
    top = best.topk(min(k, best.numel())).indices
    return [(int(n), float(best[n]), int(where[n])) for n in top]


@dataclass
class NeuronIndex:
    """For every layer and neuron, its k highest activations over a text and where they are."""

    values: torch.Tensor  # (n_layer, n_neurons, k), highest first
    positions: torch.Tensor  # (n_layer, n_neurons, k) positions in the text
    block_size: int
    n_tokens: int

    def top(self, layer: int, neuron: int) -> list[tuple[float, int]]:
        return [(float(v), int(p)) for v, p in zip(self.values[layer, neuron], self.positions[layer, neuron])]


def windows(tokens: torch.Tensor, block_size: int) -> list[torch.Tensor]:
    """Consecutive windows of block_size tokens (the last may be shorter)."""
    return list(torch.split(tokens, block_size))


@torch.no_grad()
def scan(model: GPT, tokens: torch.Tensor, k: int = TOP_K) -> NeuronIndex:
    """One pass over `tokens` keeping, per layer and neuron, the k highest activations (a running top-k)."""
    check_layer(model, 0)
    cfg = model.config
    names = [hidden_name(i) for i in range(cfg.n_layer)]
    n_neurons = 4 * cfg.n_embd
    best_v = torch.full((cfg.n_layer, k, n_neurons), float("-inf"))
    best_p = torch.zeros((cfg.n_layer, k, n_neurons), dtype=torch.long)
    parts = windows(tokens.long(), cfg.block_size)
    full, tail = (parts[:-1], parts[-1:]) if len(parts[-1]) < cfg.block_size else (parts, [])
    batches = [torch.stack(full[i:i + WINDOWS_PER_BATCH]) for i in range(0, len(full), WINDOWS_PER_BATCH)]
    batches += [t[None] for t in tail]
    was_training, start = model.training, 0
    model.eval()
    try:
        for idx in batches:
            _, cache = model.run_with_cache(idx, names)
            pos = start + torch.arange(idx.numel())
            for layer, name in enumerate(names):
                acts = cache[name].reshape(-1, n_neurons)  # (tokens in this batch, n_neurons)
                v = torch.cat([best_v[layer], acts])
                p = torch.cat([best_p[layer], pos[:, None].expand(-1, n_neurons)])
                top = v.topk(k, dim=0)  # a running top-k over the tokens seen so far
                best_v[layer], best_p[layer] = top.values, p.gather(0, top.indices)
            start += idx.numel()
    finally:
        model.train(was_training)
    return NeuronIndex(best_v.transpose(1, 2).contiguous(), best_p.transpose(1, 2).contiguous(), cfg.block_size,
                       len(tokens))


@dataclass
class Context:
    activation: float
    position: int  # in the text
    before: list[str]  # token labels the model saw before the firing token (in its window)
    token: str
    after: list[str]


def contexts(index: NeuronIndex, tokens: torch.Tensor, tokenizer: Tokenizer, layer: int, neuron: int,
             before: int = 30, after: int = 5) -> list[Context]:
    """The text around each of the neuron's top positions: the window's earlier tokens, the token, a few after."""
    out = []
    for value, p in index.top(layer, neuron):
        if value == float("-inf"):  # a text shorter than k tokens
            continue
        window_start = p - p % index.block_size  # the model's context starts at its window
        lo = max(window_start, p - before)
        ids = tokens[lo:p + after + 1].tolist()
        labels = [tokenizer.decode([i]) for i in ids]
        cut = p - lo
        out.append(Context(value, p, labels[:cut], labels[cut], labels[cut + 1:]))
    return out
