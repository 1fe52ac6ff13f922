"""One attention head, computed step by step from the model's own weights and activations.

    _, cache = model.run_with_cache(idx)
    s = head_steps(model, cache, layer=0, head=1, query=5)
    s.pattern_row   # == cache["blocks.0.attn.pattern"][0, 1, 5]
    s.z             # == cache["blocks.0.attn.z"][0, 1, 5]

Each step is the lecture's line of code, written out for one query token; tests check that every step
equals the hook the model itself recorded (q, k, v, scores, pattern, z, the attention output, the stream).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from .errors import ConfigError
from .model import GPT

# The steps in the order the lecture takes them: (name, what happens, the line of code).
STEPS: dict[str, tuple[str, str]] = {
    "input": ("LayerNorm'd input", "x = ln_1(residual stream)"),
    "qkv": ("query, keys, values", "q, k, v = x @ W_q, x @ W_k, x @ W_v"),
    "dots": ("dot products q·k", "wei = q @ k.T"),
    "scaled": ("divide by √head_size", "wei = wei * head_size**-0.5"),
    "masked": ("causal mask", "wei = wei.masked_fill(tril == 0, -inf)"),
    "softmax": ("softmax", "wei = F.softmax(wei, dim=-1)"),
    "weighted": ("weighted sum of values", "out = wei @ v"),
    "concat": ("concatenate the heads", "y = torch.cat([h(x) for h in heads], dim=-1)"),
    "proj": ("output projection", "y = proj(y)"),
    "residual": ("add to the residual stream", "x = x + y"),
}


@dataclass
class HeadSteps:
    """Every intermediate number of one head for one query token (all keys are the visible tokens 0..T-1)."""

    layer: int
    head: int
    query: int
    n_embd: int
    head_size: int
    x: torch.Tensor  # (T, n_embd) the LayerNorm'd input rows
    q: torch.Tensor  # (head_size,) the query's query vector
    k: torch.Tensor  # (T, head_size) every token's key
    v: torch.Tensor  # (T, head_size) every token's value
    dots: torch.Tensor  # (T,) q·k for every key
    scaled: torch.Tensor  # (T,) dots / sqrt(head_size)
    masked: torch.Tensor  # (T,) -inf after the query
    pattern_row: torch.Tensor  # (T,) softmax: the query's row of the attention pattern
    z: torch.Tensor  # (head_size,) the weighted sum of the values: this head's output
    concat: torch.Tensor  # (n_embd,) every head's output at the query, side by side
    attn_out: torch.Tensor  # (n_embd,) after the output projection
    resid_pre: torch.Tensor  # (n_embd,) the residual stream before the block
    resid_mid: torch.Tensor  # (n_embd,) the stream after attention added its part

    @property
    def visible(self) -> int:
        """How many tokens the query may look at: itself and everything before it."""
        return self.query + 1

    def shapes(self) -> dict[str, str]:
        """The weight matrices' shapes, written out for the page."""
        C, hs = self.n_embd, self.head_size
        return {"W_q": f"({C} → {hs})", "W_k": f"({C} → {hs})", "W_v": f"({C} → {hs})",
                "W_o": f"({C} → {C})"}


def check_choice(model: GPT, layer: int, head: int, query: int, T: int):
    cfg = model.config
    if cfg.n_layer == 0:
        raise ConfigError("A bigram model has no attention heads: train a model with at least one layer.")
    if not (0 <= layer < cfg.n_layer and 0 <= head < cfg.n_head):
        raise ConfigError(f"There is no head {head} in layer {layer} of this model.")
    if not 0 <= query < T:
        raise ConfigError(f"The prompt has {T} tokens: the query must be between 0 and {T - 1}.")


@torch.no_grad()
def head_steps(model: GPT, cache: dict, layer: int, head: int, query: int) -> HeadSteps:
    """Recompute one head for one query from the cached residual stream (batch row 0) and the weights."""
    resid_pre = cache[f"blocks.{layer}.resid_pre"][0]
    T = resid_pre.shape[0]
    check_choice(model, layer, head, query, T)
    block, cfg = model.blocks[layer], model.config
    C, hs = cfg.n_embd, cfg.head_size
    x = block.ln_1(resid_pre)  # the model caches no LayerNorm output here: apply its own LayerNorm
    W, b = block.attn.c_attn.weight, block.attn.c_attn.bias  # rows: q | k | v, each n_embd long
    cols = slice(head * hs, (head + 1) * hs)

    def project(part: int) -> torch.Tensor:  # x @ W_part for this head's slice of columns
        rows = slice(part * C + cols.start, part * C + cols.stop)
        return F.linear(x, W[rows], None if b is None else b[rows])

    q_all, k, v = project(0), project(1), project(2)
    q = q_all[query]
    dots = k @ q
    scaled = dots / math.sqrt(hs)
    masked = scaled.masked_fill(torch.arange(T) > query, float("-inf"))
    row = F.softmax(masked, dim=-1)
    z = row @ v
    # every head's output at this query (from the cache: the other heads are computed the same way)
    concat = cache[f"blocks.{layer}.attn.z"][0, :, query].reshape(C).clone()
    concat[cols] = z
    attn_out = block.attn.c_proj(concat)
    resid_mid = resid_pre[query] + attn_out if block.residual else attn_out
    return HeadSteps(layer, head, query, C, hs, x, q, k, v, dots, scaled, masked, row, z, concat, attn_out,
                     resid_pre[query], resid_mid)
