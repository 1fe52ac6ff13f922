"""What a student may ask of a shared server, defined once: the Train page's ranges, what a checkpoint
may hold, how large an upload may be.

The Train page draws its sliders from TRAIN; a shared link is clamped to it (`clamp`); a checkpoint
is opened only when its model is one the Train page could have made (`check_openable`), so no
inspection view (attention maps, head scores, neuron scans) can be asked for more than the app's own
largest model needs.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from .errors import CheckpointError
from .model import GPTConfig

MB = 2**20
# What one browser tab may hold in server memory (kept 12 h after it was last seen, see sessions.py)
RUNS_PER_TAB = 40  # trained runs kept: a new training past it asks the student to delete one
UPLOADS_PER_TAB = 5  # checkpoint files opened from the student's computer
OPENED_PER_TAB = 3  # server checkpoints built into models; the least recently used is dropped (re-read on demand)
GPT2_VOCAB = 50_257  # the largest vocabulary the Data page offers (GPT-2's BPE)


@dataclass(frozen=True)
class Range:
    """A slider's range (low..high by step) or a select slider's stops (options)."""

    low: float
    high: float
    step: float | None = None
    options: tuple | None = None

    def nearest(self, value):
        """The allowed value closest to `value` (a link typed by hand, or saved before a range changed)."""
        if self.options is not None:
            return min(self.options, key=lambda o: (abs(o - value), o))
        # within the range, a value between two steps is harmless (the slider shows it as it is)
        return type(self.low)(min(max(value, self.low), self.high))


TRAIN = {
    "n_layer": Range(0, 8, 1),
    "n_embd": Range(16, 256, options=(16, 32, 48, 64, 96, 128, 192, 256)),
    "n_head": Range(1, 16, 1),  # and it must divide n_embd (ui.training.head_choices)
    "block_size": Range(8, 256, options=(8, 16, 32, 64, 128, 256)),
    "dropout": Range(0.0, 0.5, 0.05),
    "batch_size": Range(4, 64, options=(4, 8, 12, 16, 24, 32, 48, 64)),
    "learning_rate": Range(1e-4, 1.0, options=(1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 3e-2, 1e-1, 1.0)),
    "max_iters": Range(20, 5000, 20),
    "eval_interval": Range(10, 500, 10),
    "seed": Range(0, 2**31 - 1, 1),
}


def clamp(name: str, value) -> tuple[object, bool]:
    """(the allowed value nearest to `value`, whether it had to move) for a Train setting."""
    r = TRAIN.get(name)
    if r is None or isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return value, False
    near = r.nearest(value)
    return near, near != value


def largest_config() -> GPTConfig:
    """The largest model the Train page can make: what a downloaded checkpoint must be able to hold."""
    return GPTConfig(vocab_size=GPT2_VOCAB, block_size=int(TRAIN["block_size"].high), n_layer=int(TRAIN["n_layer"].high),
                     n_head=int(TRAIN["n_head"].high), n_embd=int(TRAIN["n_embd"].high))


def _checkpoint_limit() -> int:
    """The largest model's float32 weights plus as many bytes of float16 snapshots (two of them): a
    download never exceeds it (checkpoints.to_bytes thins the timeline), so every download opens again."""
    weights = largest_config().num_params() * 4
    return (math.ceil(2 * weights / MB) + 3) * MB  # + the JSON header (to_bytes keeps 2 MB for it)


CHECKPOINT_MAX_BYTES = _checkpoint_limit()
CHECKPOINT_MAX_MB = CHECKPOINT_MAX_BYTES // MB


def check_openable(config: GPTConfig):
    """Refuse a model larger than the Train page can make: every view is sized for those."""
    largest = largest_config()
    for name in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size"):
        if getattr(config, name) > getattr(largest, name):
            raise CheckpointError(
                f"This checkpoint's model has {name} {getattr(config, name):,}; the app shows models up to "
                f"{name} {getattr(largest, name):,} (the Train page's largest), so that no view needs more "
                "memory than a shared server can give one student.")
