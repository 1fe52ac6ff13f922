"""The lecture's "mathematical trick": four ways for every token to average the tokens before it.

    x = toy_tensor(T=5, C=3, seed=0)
    results = {name: fn(x) for name, fn in VERSIONS.items()}   # versions 1-3 agree to float rounding

Versions 1-3 compute the same average of the past; version 4 swaps the zeros for learned scores
(query · key), so each token picks *which* earlier tokens to weigh — that is self-attention.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .errors import ConfigError

MAX_T, MAX_C = 12, 8  # a toy the student can read and edit cell by cell


def toy_tensor(T: int = 5, C: int = 3, seed: int = 1337) -> torch.Tensor:
    """A small (T, C) tensor of random numbers, rounded to one decimal so that it reads easily."""
    check_shape(T, C)
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(T, C, generator=g) * 10).round() / 10


def check_shape(T: int, C: int):
    if not (1 <= T <= MAX_T and 1 <= C <= MAX_C):
        raise ConfigError(f"The toy tensor has 1 to {MAX_T} rows (tokens) and 1 to {MAX_C} columns (channels), "
                          f"not {T} × {C}.")


def loop_average(x: torch.Tensor) -> torch.Tensor:
    """Version 1: for every token, the mean of itself and every token before it (a for loop)."""
    out = torch.zeros_like(x)
    for t in range(x.shape[0]):
        out[t] = x[: t + 1].mean(dim=0)
    return out


def tril_weights(T: int) -> torch.Tensor:
    """Version 2's matrix: lower-triangular ones, each row divided by its sum."""
    w = torch.tril(torch.ones(T, T))
    return w / w.sum(dim=1, keepdim=True)


def matmul_average(x: torch.Tensor) -> torch.Tensor:
    """Version 2: the same averages as one matrix product."""
    return tril_weights(x.shape[0]) @ x


def softmax_weights(scores: torch.Tensor) -> torch.Tensor:
    """Scores -> weights: -inf above the diagonal (no peeking at the future), then softmax per row."""
    T = scores.shape[0]
    return F.softmax(scores.masked_fill(torch.tril(torch.ones(T, T)) == 0, float("-inf")), dim=-1)


def softmax_average(x: torch.Tensor) -> torch.Tensor:
    """Version 3: scores of zero, masked and softmaxed, give the same averaging weights."""
    T = x.shape[0]
    return softmax_weights(torch.zeros(T, T)) @ x


def attention_scores(x: torch.Tensor, head_size: int = 4, seed: int = 0) -> torch.Tensor:
    """Version 4's scores: query · key / √head_size, from small random (untrained) query and key layers."""
    g = torch.Generator().manual_seed(seed)
    C = x.shape[1]
    w_q, w_k = torch.randn(C, head_size, generator=g), torch.randn(C, head_size, generator=g)
    return (x @ w_q) @ (x @ w_k).T * head_size**-0.5


def attention_average(x: torch.Tensor, head_size: int = 4, seed: int = 0) -> torch.Tensor:
    """Version 4: the scores come from the data, so each token weighs the past its own way."""
    return softmax_weights(attention_scores(x, head_size, seed)) @ x


VERSIONS = {
    "1. a loop over the past": loop_average,
    "2. matrix product with tril / row sums": matmul_average,
    "3. softmax of masked zeros": softmax_average,
    "4. softmax of learned scores (q·k)": attention_average,
}

# The lecture's lines for each version, shown beside its result.
CODE = {
    "1. a loop over the past": "for t in range(T):\n    xbow[t] = x[:t + 1].mean(0)",
    "2. matrix product with tril / row sums": "wei = torch.tril(torch.ones(T, T))\nwei = wei / wei.sum(1, keepdim=True)\n"
                                              "xbow2 = wei @ x",
    "3. softmax of masked zeros": "wei = torch.zeros(T, T)\nwei = wei.masked_fill(tril == 0, float('-inf'))\n"
                                  "wei = F.softmax(wei, dim=-1)\nxbow3 = wei @ x",
    "4. softmax of learned scores (q·k)": "wei = query(x) @ key(x).T * head_size**-0.5\n"
                                          "wei = wei.masked_fill(tril == 0, float('-inf'))\n"
                                          "wei = F.softmax(wei, dim=-1)\nout = wei @ x",
}
EQUAL_WITHIN = 1e-6


def weights_of(version: str, x: torch.Tensor) -> torch.Tensor:
    """The (T, T) weights each version multiplies x with (version 1's loop has the same as version 2)."""
    T = x.shape[0]
    if version.startswith("4"):
        return softmax_weights(attention_scores(x))
    if version.startswith("3"):
        return softmax_weights(torch.zeros(T, T))
    return tril_weights(T)


def compare(x: torch.Tensor) -> dict[str, float]:
    """The largest difference of each version from version 1 (the loop)."""
    reference = loop_average(x)
    return {name: float((fn(x) - reference).abs().max()) for name, fn in VERSIONS.items()}
