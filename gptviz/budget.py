"""What a training run will cost before it starts: parameters, memory and time.

Time comes from nanoGPT's FLOP count and this machine's measured matmul speed; memory from the
weights, AdamW's two moment buffers, gradients and the activations autograd keeps for backward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import ConfigError
from .model import GPT, GPTConfig

MEMORY_LIMIT_BYTES = 2 * 1024**3  # per training job on a shared classroom server
TYPICAL_MFU = 0.45  # the fraction of matmul peak a small model reaches on a CPU (see README)


def num_params(config: GPTConfig) -> int:
    with torch.device("meta"):  # shapes only, no memory
        return GPT(config).num_params()


def flops_per_token(config: GPTConfig, n_params: int) -> float:
    """nanoGPT's estimate for a training step: 6 FLOPs per weight plus attention's 12·L·T·C."""
    n = n_params - (config.block_size * config.n_embd if config.pos_embd else 0)
    return 6 * n + 12 * config.n_layer * config.block_size * config.n_embd


def activation_bytes(config: GPTConfig, batch_size: int) -> int:
    """A generous count of the float32 tensors kept for backward (attention maps included)."""
    B, T, C, V = batch_size, config.block_size, config.n_embd, config.vocab_size
    per_layer = 16 * B * T * C + 2 * B * config.n_head * T * T  # qkv, norms, MLP hidden, residuals; scores
    return 4 * (config.n_layer * per_layer + 3 * B * T * V + 2 * B * T * C)


@dataclass
class Estimate:
    params: int
    memory_bytes: int
    seconds: float | None

    @property
    def memory_mb(self) -> float:
        return self.memory_bytes / 1024**2


def estimate(config: GPTConfig, batch_size: int, max_iters: int, peak_flops: float | None = None) -> Estimate:
    params = num_params(config)
    memory = 4 * params * 4 + activation_bytes(config, batch_size)  # weights, grads, 2 AdamW moments
    seconds = None
    if peak_flops:
        tokens = max_iters * batch_size * config.block_size
        seconds = tokens * flops_per_token(config, params) / (TYPICAL_MFU * peak_flops)
    return Estimate(params, memory, seconds)


def check_fits(est: Estimate, limit_bytes: int = MEMORY_LIMIT_BYTES):
    if est.memory_bytes > limit_bytes:
        raise ConfigError(
            f"This model would need about {est.memory_mb:,.0f} MB to train ({est.params:,} parameters, "
            f"plus gradients, optimizer state and activations); the limit per training is "
            f"{limit_bytes / 1024**2:,.0f} MB. Make n_embd, n_layer, block_size or batch_size smaller."
        )
