"""What a training run is, in words a class can read: its settings, its name, its checkpoint meta,
the lab-notebook table of several runs and the one-line verdict between two of them.

A run's name is its preset plus what differs from that preset's defaults ("gpt · n_head 8 · block 32"),
so two runs that differ in one slider never share a name. Runs that differ only in their seed form a
*seed group*: the table shows the group's mean val loss ± half its range, and the verdict uses that
spread to say whether a difference is more than seed noise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .data import DEFAULT_CORPUS
from .model import PRESETS, GPTConfig, preset_config
from .train import TrainConfig


@dataclass(frozen=True)
class Setting:
    key: str  # the field of GPTConfig / TrainConfig (or "corpus", "tokenizer", "vocab")
    label: str  # the table's column and the word in a run's name
    in_name: bool = True  # settings that change nothing about the model trained stay out of the name


# Every setting a run is described by, in the order names and tables list them.
SETTINGS = (
    Setting("corpus", "text"), Setting("tokenizer", "tokens"), Setting("vocab", "vocab", in_name=False),
    Setting("n_layer", "n_layer"), Setting("n_head", "n_head"), Setting("n_embd", "n_embd"),
    Setting("block_size", "block"), Setting("dropout", "dropout"), Setting("pos_embd", "positions"),
    Setting("mlp", "MLP"), Setting("residual", "residual"), Setting("layernorm", "LayerNorm"),
    Setting("batch_size", "batch"), Setting("learning_rate", "lr"), Setting("max_iters", "iters"),
    Setting("eval_interval", "eval every", in_name=False), Setting("seed", "seed"),
)
LABELS = {s.key: s.label for s in SETTINGS}
_MODEL_KEYS = ("n_layer", "n_head", "n_embd", "block_size", "dropout", "pos_embd", "mlp", "residual", "layernorm")
_TRAIN_KEYS = ("batch_size", "learning_rate", "max_iters", "eval_interval", "seed")
DEFAULT_TOKENIZER = "char"


def settings_of(config: GPTConfig, cfg: TrainConfig, corpus: str, tokenizer: str) -> dict:
    """The flat settings of a run: text, tokenizer, model shape and training budget."""
    return {"corpus": corpus, "tokenizer": tokenizer, "vocab": config.vocab_size,
            **{k: getattr(config, k) for k in _MODEL_KEYS}, **{k: getattr(cfg, k) for k in _TRAIN_KEYS}}


def preset_defaults(preset: str, vocab_size: int) -> dict:
    """The settings a preset starts from: what a run's name leaves out."""
    return settings_of(preset_config(preset, vocab_size), TrainConfig(), DEFAULT_CORPUS, DEFAULT_TOKENIZER)


def fmt(key: str, value) -> str:
    """A setting's value as the table and the names write it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int) and key != "seed":
        return f"{value:,}" if value >= 10_000 else str(value)
    return str(value)


def _name_part(key: str, value) -> str:
    if key == "corpus":
        return str(value)
    if key == "tokenizer":
        return f"{value} tokens"
    return f"{LABELS[key]} {fmt(key, value)}"


def run_name(preset: str, settings: dict, leave_out: tuple[str, ...] = ()) -> str:
    """'gpt · n_head 8 · block 32': the preset plus every named setting that differs from its defaults."""
    base = preset_defaults(preset, settings.get("vocab", 65)) if preset in PRESETS else {}
    parts = [_name_part(s.key, settings[s.key]) for s in SETTINGS
             if s.in_name and s.key in settings and s.key not in leave_out and settings[s.key] != base.get(s.key)]
    return " · ".join([preset, *parts])


def unique_name(name: str, taken) -> str:
    """`name`, or 'name (2)', 'name (3)', ...: two runs with the same settings still tell apart."""
    taken, candidate, n = set(taken), name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name} ({n})"
    return candidate


def file_stem(name: str) -> str:
    """A run's name as a checkpoint / file name: 'gpt · n_head 8 · lr 0.01' -> 'gpt-n_head8-lr0.01'."""
    parts = [re.sub(r"[^A-Za-z0-9_.]", "", p.replace(",", "")) for p in name.split("·")]
    stem = "-".join(p for p in parts if p).strip(".")
    return stem[:64] or "run"


def mean_tokens_per_sec(trainer) -> float:
    """Tokens learned from per second of training steps (evaluations and samples not counted)."""
    cfg = trainer.cfg
    world = getattr(trainer, "world_size", 1)  # a training in a worker process or on Ray: one process
    steps = len(trainer.history["step"])
    tokens = steps * cfg.batch_size * cfg.grad_accum_steps * world * trainer.model.config.block_size
    return tokens / trainer.train_s if trainer.train_s else 0.0


def checkpoint_meta(trainer, corpus: str, preset: str, name: str | None = None, **extra) -> dict:
    """What a checkpoint remembers about its run besides the weights (the one recipe for every saver)."""
    meta = {"corpus": corpus, "preset": preset, "train_config": trainer.cfg.to_dict(), "history": trainer.history,
            "elapsed_s": trainer.elapsed_s, "status": str(trainer.status),
            "processes": getattr(trainer, "world_size", 1), "train_s": trainer.train_s,
            "tokens_per_sec": mean_tokens_per_sec(trainer)}
    if name is not None:
        meta["name"] = name
    return {**meta, **extra}


# ---- several runs: the lab notebook ------------------------------------------------------------

@dataclass
class Result:
    """What the notebook needs of one finished run."""

    name: str
    preset: str
    settings: dict
    params: int
    step: list[int]
    train_loss: list[float]
    eval_step: list[int]
    val_loss: list[float]
    seconds: float
    tokens_per_sec: float
    group: int  # runs with the same settings but their seed share a group


def result_of(trainer, name: str, preset: str, settings: dict, group: int) -> Result:
    h = trainer.history
    return Result(name, preset, settings, trainer.model.num_params(), list(h["step"]), list(h["train_loss"]),
                  list(h["eval_step"]), list(h["val_loss"]), trainer.elapsed_s, mean_tokens_per_sec(trainer), group)


@dataclass
class Group:
    """One row of the notebook: a run, or a run repeated with other seeds."""

    members: list[Result] = field(default_factory=list)

    @property
    def first(self) -> Result:
        return self.members[0]

    @property
    def seeds(self) -> list[int]:
        return [m.settings["seed"] for m in self.members]

    @property
    def name(self) -> str:
        if len(self.members) == 1:
            return self.first.name
        return f"{run_name(self.first.preset, self.first.settings, leave_out=('seed',))} · {len(self.members)} seeds"

    @property
    def settings(self) -> dict:
        """The shared settings; a group's seed is written as its list of seeds."""
        s = dict(self.first.settings)
        if len(self.members) > 1:
            s["seed"] = ", ".join(str(x) for x in self.seeds)
        return s

    def finals(self) -> list[float]:
        return [m.val_loss[-1] for m in self.members if m.val_loss]

    @property
    def val(self) -> float | None:
        """Mean final val loss over the seeds."""
        f = self.finals()
        return sum(f) / len(f) if f else None

    @property
    def low(self) -> float | None:
        return min(self.finals(), default=None)

    @property
    def high(self) -> float | None:
        return max(self.finals(), default=None)

    @property
    def spread(self) -> float:
        """Half the range of the final val losses: the '±' of 'mean ± range'."""
        return (self.high - self.low) / 2 if len(self.finals()) > 1 else 0.0

    @property
    def best(self) -> float | None:
        bests = [min(m.val_loss) for m in self.members if m.val_loss]
        return sum(bests) / len(bests) if bests else None

    def curve(self) -> dict:
        """Loss curves for viz.loss_chart: a run's own, or the seeds' mean with their lowest and highest
        val loss at each evaluation (over the steps every seed reached)."""
        if len(self.members) == 1:
            m = self.first
            return {"name": self.name, "step": m.step, "train_loss": m.train_loss, "eval_step": m.eval_step,
                    "val_loss": m.val_loss}
        n = min(len(m.val_loss) for m in self.members)
        cols = [[m.val_loss[i] for m in self.members] for i in range(n)]
        k = min(len(m.train_loss) for m in self.members)
        train = [sum(m.train_loss[i] for m in self.members) / len(self.members) for i in range(k)]
        return {"name": self.name, "step": self.first.step[:k], "train_loss": train,
                "eval_step": self.first.eval_step[:n], "val_loss": [sum(c) / len(c) for c in cols],
                "val_low": [min(c) for c in cols], "val_high": [max(c) for c in cols]}


def group_results(results: list[Result]) -> list[Group]:
    """Runs of one seed group become one row, in the order their first run appears."""
    groups: dict[int, Group] = {}
    for r in results:
        groups.setdefault(r.group, Group()).members.append(r)
    return list(groups.values())


def differing(groups: list[Group]) -> list[str]:
    """The setting keys whose values are not the same for every row shown."""
    return [s.key for s in SETTINGS if len({repr(g.settings.get(s.key)) for g in groups}) > 1]


def _loss(g: Group, value: float | None) -> str | None:
    if value is None:
        return None
    return f"{value:.3f} ± {g.spread:.3f}" if len(g.finals()) > 1 else f"{value:.3f}"


# how the table's number columns read: 110,529 parameters, 4.1 seconds, 57,309 tokens/s
NUMBER_FORMATS = {"parameters": "{:,}", "seconds": "{:.1f}", "tokens/s": "{:,}"}


def notebook_rows(groups: list[Group]) -> tuple[list[dict], dict[str, list[bool]]]:
    """The runs table: one row per run (or seed group), a column for every setting that differs among
    them, then parameters, final and best val loss, time and speed. Also which setting cells to
    highlight: those that differ from the first row."""
    keys = differing(groups)
    repeated = any(len(g.members) > 1 for g in groups)
    rows = []
    for g in groups:
        row = {"run": g.name, **{LABELS[k]: fmt(k, g.settings.get(k)) for k in keys},
               "parameters": g.first.params, "val loss": _loss(g, g.val), "best val loss": _loss(g, g.best)}
        if repeated:
            row["seeds"] = len(g.members)
        row["seconds"] = round(sum(m.seconds for m in g.members) / len(g.members), 1)
        row["tokens/s"] = round(sum(m.tokens_per_sec for m in g.members) / len(g.members))
        rows.append(row)
    first = groups[0].settings if groups else {}
    highlight = {LABELS[k]: [g.settings.get(k) != first.get(k) for g in groups] for k in keys}
    return rows, highlight


def _signed(x: float) -> str:
    if round(x, 3) == 0:
        return "0.000"
    return f"{x:+.3f}".replace("-", "−")  # a real minus sign, as a printed table has


def verdict(a: Group, b: Group) -> str:
    """'n_head 4 → 8: same parameters (814,145), val loss 2.069 → 2.064 (−0.005)', then whether the
    difference is beyond what changing the seed alone does."""
    keys = [k for k in differing([a, b]) if k != "seed" or len(a.members) == len(b.members) == 1]
    change = ", ".join(f"{LABELS[k]} {fmt(k, a.settings.get(k))} → {fmt(k, b.settings.get(k))}" for k in keys)
    change = change or "the same settings"
    params = (f"same parameters ({a.first.params:,})" if a.first.params == b.first.params
              else f"parameters {a.first.params:,} → {b.first.params:,}")
    if a.val is None or b.val is None:
        return f"{change}: {params}; no val loss yet."
    diff = b.val - a.val
    line = f"{change}: {params}, val loss {_loss(a, a.val)} → {_loss(b, b.val)} ({_signed(diff)})"
    if len(a.finals()) < 2 or len(b.finals()) < 2:
        return line + " — one seed: repeat with two more seeds to see whether this is more than seed noise."
    if a.low <= b.high and b.low <= a.high:  # the seeds' ranges overlap
        return line + " — within seed noise: the seeds' ranges overlap, so this may be luck."
    return line + " — beyond seed noise: every seed of one beats every seed of the other."


def next_seeds(used: list[int], n: int = 2) -> list[int]:
    """The n smallest seeds above the first one that the group has not used yet."""
    seeds, s = [], used[0]
    while len(seeds) < n:
        s += 1
        if s not in used:
            seeds.append(s)
    return seeds
