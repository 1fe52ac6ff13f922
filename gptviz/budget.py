"""What a training run will cost before it starts: parameters, memory and time.

Time: nanoGPT's FLOP count at this machine's measured matmul speed, plus what FLOPs do not show —
every operation's fixed price (a tiny model is not free) and the evaluations with their text sample.
Memory: the weights, AdamW's two moment buffers, gradients and the activations kept for backward.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .errors import ConfigError
from .model import GPT, GPTConfig
from .train import TrainConfig, log_spaced_steps

# per training job on a shared classroom server (GPTVIZ_TRAINING_MEMORY_MB, read at start)
MEMORY_LIMIT_BYTES = int(os.environ.get("GPTVIZ_TRAINING_MEMORY_MB", 2048)) * 1024**2
# Measured on the reference machine (2-core EPYC, one torch thread per training, as the app runs them);
# `python -m gptviz bench` compares the estimate with real runs.
TYPICAL_MFU = 0.85  # one thread's matmuls run close to the measured peak
STEP_S = 0.8e-3  # a step's fixed work: embedding, loss, optimizer bookkeeping
LAYER_S = 1.0e-3  # one block's operations, forward + backward + AdamW, at any size
LAYER_S_PER_1K_TOKENS = 2.5e-3  # its elementwise work (norms, softmax, GELU) per 1,024 tokens of a batch
# per logit (tokens x vocabulary): softmax, loss and their gradients run at memory speed, not matmul speed
LOGIT_S, LOGIT_FORWARD_S = 9e-9, 6e-9  # a training step; a forward pass alone (evaluation)
TOKEN_S, TOKEN_LAYER_S = 0.075e-3, 0.21e-3  # one generated token of the sample at each evaluation


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
    seconds: float | None  # the whole run, evaluations included
    eval_seconds: float | None = None  # the part spent on evaluations and their samples

    @property
    def memory_mb(self) -> float:
        return self.memory_bytes / 1024**2


def num_evals(train: TrainConfig) -> int:
    """Evaluations the Trainer makes: at step 0, every eval_interval steps, and at the last step."""
    return train.max_iters // train.eval_interval + 1 + (train.max_iters % train.eval_interval > 0)


def _matmuls_and_operations(config: GPTConfig, params: int, tokens: int, peak_flops: float) -> float:
    flops = tokens * flops_per_token(config, params) / (TYPICAL_MFU * peak_flops)
    return flops + STEP_S + config.n_layer * (LAYER_S + LAYER_S_PER_1K_TOKENS * tokens / 1024)


def step_seconds(config: GPTConfig, params: int, tokens: int, peak_flops: float) -> float:
    """One training step over `tokens` tokens: matmul FLOPs at TYPICAL_MFU, the per-operation costs, and
    the logits, which dominate with a big vocabulary (GPT-2's 50,257 tokens: 200 MB per batch of 1,024)."""
    return _matmuls_and_operations(config, params, tokens, peak_flops) + tokens * config.vocab_size * LOGIT_S


def forward_seconds(config: GPTConfig, params: int, tokens: int, peak_flops: float) -> float:
    """One forward pass without gradients: a third of a step's matmuls and operations, and the logits."""
    return (_matmuls_and_operations(config, params, tokens, peak_flops) / 3
            + tokens * config.vocab_size * LOGIT_FORWARD_S)


def estimate(config: GPTConfig, train: TrainConfig, peak_flops: float | None = None) -> Estimate:
    params = num_params(config)
    memory = 4 * params * 4 + activation_bytes(config, train.batch_size)  # weights, grads, 2 AdamW moments
    if not peak_flops:
        return Estimate(params, memory, None)
    step = step_seconds(config, params, train.batch_size * train.grad_accum_steps * config.block_size, peak_flops)
    # an evaluation: 2 splits x eval_iters forward passes, then a short sample
    forward = forward_seconds(config, params, train.batch_size * config.block_size, peak_flops)
    sample = train.sample_tokens * (TOKEN_S + config.n_layer * TOKEN_LAYER_S + 2 * params / peak_flops)
    evals = num_evals(train) * (2 * train.eval_iters * forward + sample)
    return Estimate(params, memory, train.max_iters * step + evals, evals)


def kept_bytes(params: int, train: TrainConfig) -> int:
    """What a finished run keeps in the server: its float32 model, the student's copy, fp16 snapshots."""
    snapshots = len(train.snapshot_steps or log_spaced_steps(train.max_iters))
    return params * (4 + 4 + 2 * snapshots)


def check_fits(est: Estimate, limit_bytes: int = MEMORY_LIMIT_BYTES):
    if est.memory_bytes > limit_bytes:
        raise ConfigError(
            f"This model would need about {est.memory_mb:,.0f} MB to train ({est.params:,} parameters, "
            f"plus gradients, optimizer state and activations); the limit per training is "
            f"{limit_bytes / 1024**2:,.0f} MB. Make n_embd, n_layer, block_size or batch_size smaller."
        )
