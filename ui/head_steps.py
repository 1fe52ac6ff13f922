"""The One-head-step-by-step page's helpers: what one view of a head shows, and how a number is checked."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from gptviz import stepwise

from .common import keep
from .state import HeadSteps


@dataclass
class View:
    """One head of one layer at one query token: the steps' numbers and what they are checked against."""

    steps: stepwise.HeadSteps
    cache: dict
    labels: list[str]  # the prompt's token labels
    layer: int
    head: int
    query: int
    focus: str  # the step the student highlights ("" for none)
    n_head: int

    @property
    def hook(self) -> str:
        return f"blocks.{self.layer}.attn"

    @property
    def seen(self) -> list[str]:
        """The labels of the tokens the query may look at."""
        return self.labels[: self.steps.visible]


def keep_choices(n_layer: int, n_head: int, T: int):
    """Remembered layer, head, query and step that this model or prompt does not have go back to defaults."""
    keep(HeadSteps.LAYER, lambda v: v in range(n_layer), 0)
    keep(HeadSteps.HEAD, lambda v: v in range(n_head), 0)
    keep(HeadSteps.QUERY, lambda v: v in range(T), T - 1)
    keep(HeadSteps.FOCUS, lambda v: v in stepwise.STEPS, "softmax")


def step_title(names: list[str], focus: str) -> str:
    """'#### 3–6. dot products, ...' for a box of steps, pointed at when it holds the highlighted one."""
    order = list(stepwise.STEPS)
    numbers = [order.index(n) + 1 for n in names]
    span = f"{numbers[0]}" if len(numbers) == 1 else f"{numbers[0]}–{numbers[-1]}"
    pointer = "👉 " if focus in names else ""
    return f"#### {pointer}{span}. {', '.join(stepwise.STEPS[n][0] for n in names)}"


def matches(value, hook: str, reference) -> str:
    """How far a shown number is from the model's own recorded activation."""
    diff = float((value - reference).abs().max())
    return f"equals the model's own `{hook}` (largest difference {diff:.1e})"


def chart(fig, key):
    st.plotly_chart(fig, theme=None, width="stretch", key=key)
