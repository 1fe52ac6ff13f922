"""Experiments that train several models on the same data with the same budget."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable

from . import induction
from .data import TokenData
from .model import LADDER, PRESET_TITLES, GPTConfig, preset_config
from .train import TrainConfig, Trainer

# Presets that come with their own text and training recipe (the Train page and the CLI load them too).
PRESET_RECIPES: dict[str, dict] = {induction.PRESET: induction.RECIPE}
PRESET_NOTES: dict[str, str] = {induction.PRESET: induction.NOTE}


def ladder_configs(vocab_size: int, block_size: int = 64, presets: list[str] | None = None) -> dict[str, GPTConfig]:
    """The lecture's progression, bigram -> GPT, at one context length: the models of a ladder."""
    return {name: preset_config(name, vocab_size, block_size) for name in presets or LADDER}


def run_ladder(data: TokenData, cfg: TrainConfig, presets: list[str] | None = None, block_size: int = 64,
               on_result: Callable[[dict], None] | None = None) -> list[dict]:
    """The lecture's progression, bigram -> GPT: same text, steps, batch, learning rate and seed."""
    rows = []
    for name, config in ladder_configs(data.tokenizer.vocab_size, block_size, presets).items():
        trainer = Trainer(config, replace(cfg, sample_tokens=0), data)
        start = time.perf_counter()
        trainer.run()
        row = {
            "preset": name,
            "title": PRESET_TITLES[name],
            "params": trainer.model.num_params(),
            "val_loss": trainer.history["val_loss"][-1],
            "train_loss": trainer.history["eval_train_loss"][-1],
            "seconds": time.perf_counter() - start,
            "history": {k: trainer.history[k] for k in ("eval_step", "val_loss", "eval_train_loss")},
        }
        rows.append(row)
        if on_result:
            on_result(row)
    return rows
