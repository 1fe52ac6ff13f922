"""The Compare page's helpers: which step each side starts at, and the curves both sides draw."""

from __future__ import annotations

from . import timeline
from .models import ModelEntry

CURVE_FIELDS = ("step", "train_loss", "eval_step", "val_loss")  # what the loss chart reads of a run's history


def start_step(entry: ModelEntry, same: bool, side: str) -> int | None:
    """Where a side's training-step slider starts: B starts halfway when both sides are one model."""
    if not (same and side == "b"):
        return None
    steps = timeline.steps(entry)
    return steps[(len(steps) - 1) // 2]


def loss_curves(entries: list[ModelEntry]) -> list[dict]:
    """One curve per distinct model, from its saved training history (empty lists when it kept none)."""
    return [{"name": e.label, **{k: e.meta.get("history", {}).get(k, []) for k in CURVE_FIELDS}} for e in entries]


def shown_steps(pair: list[ModelEntry]) -> dict[str, int]:
    """{"A": step, "B": step}: the training step each side shows, marked on the curves."""
    return {side.upper(): timeline.final_step(e) if e.step is None else e.step for side, e in zip("ab", pair)}
