"""Training that a user interface can drive from another thread.

    trainer = Trainer(model_config, TrainConfig(max_iters=500), data)
    trainer.start()            # runs in a background thread
    trainer.pause(); trainer.resume(); trainer.stop()
    trainer.history            # losses so far, safe to read while it runs

The loop is nanoGPT's: random blocks of text, AdamW, warm-up then cosine decay, gradient
clipping, and a loss estimate on held-out text every `eval_interval` steps.

With `grad_accum_steps` > 1 a step adds up the gradients of several micro-batches before it
updates the weights. Under torchrun (see distributed.py) the Trainer notices the process group,
wraps the model in PyTorch's DistributedDataParallel and trains on every rank in lockstep; only
rank 0 evaluates, samples and keeps snapshots. One step then learns from
batch_size x grad_accum_steps x world_size windows of text.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from . import distributed
from .errors import ConfigError, GptvizError, TrainingError
from .model import GPT, GPTConfig

if TYPE_CHECKING:  # only for type hints
    from .data import TokenData

log = logging.getLogger(__name__)

# A loss this many times a random guess's, ln(vocab_size), means the weights have blown up even while it
# is still finite (without LayerNorm a too-high rate reaches 500,000): stop as for NaN.
BLOWN_UP = 10


@dataclass
class TrainConfig:
    # The default recipe: val loss <= 2.0 on tiny Shakespeare (char, gpt preset) in well under a minute
    # on 2 CPU cores. Small batches and a high peak rate learn more per token than nanoGPT's 12 x 1e-3.
    max_iters: int = 800
    batch_size: int = 16  # windows per micro-batch (per process)
    grad_accum_steps: int = 1  # micro-batches per step; a step sees batch_size x grad_accum_steps x processes
    learning_rate: float = 5e-3
    min_lr: float | None = None  # where the cosine decay ends; None: the recipe's learning_rate / 10
    warmup_iters: int | None = None  # None: the recipe's min(30, max_iters // 10), at least 1
    weight_decay: float = 0.1
    beta2: float = 0.99  # nanoGPT's choice for small models that see few tokens per step
    grad_clip: float = 1.0  # 0 turns clipping off
    eval_interval: int = 100
    eval_iters: int = 20  # batches per loss estimate
    seed: int = 1337
    device: str = "auto"
    snapshot_steps: list[int] | None = None  # None: log-spaced (0, 10, 30, 100, 300, ... and the end)
    snapshot_every: int = 0  # also keep weights every this many steps (a timeline dense enough for a phase change)
    sample_tokens: int = 120  # a short text sample at each evaluation; 0 turns it off

    def __post_init__(self):
        # The one training recipe (the app, the command line and the ladder all read it from here): decay to
        # a tenth of the peak, and a warm-up that a short run leaves (a 20-step run warms up for 2 steps).
        if self.min_lr is None:
            self.min_lr = self.learning_rate / 10
        if self.warmup_iters is None:
            self.warmup_iters = min(30, max(1, self.max_iters // 10))

    def validate(self):
        if self.max_iters < 1:
            raise ConfigError(f"max_iters must be at least 1 (got {self.max_iters}).")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1 (got {self.batch_size}).")
        if self.grad_accum_steps < 1:
            raise ConfigError(f"grad_accum_steps must be at least 1 (got {self.grad_accum_steps}).")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be above 0 (got {self.learning_rate}).")
        if self.eval_interval < 1 or self.eval_iters < 1:
            raise ConfigError("eval_interval and eval_iters must be at least 1.")

    def to_dict(self) -> dict:
        return asdict(self)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay from learning_rate to min_lr at max_iters."""
    if step < cfg.warmup_iters:
        return cfg.learning_rate * (step + 1) / cfg.warmup_iters
    progress = (step - cfg.warmup_iters) / max(1, cfg.max_iters - cfg.warmup_iters)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))) * (cfg.learning_rate - cfg.min_lr)


def log_spaced_steps(max_iters: int) -> list[int]:
    """0, 10, 30, 100, 300, 1000, ... below max_iters, and max_iters itself."""
    steps, k = [0], 0
    while True:
        for m in (1, 3):
            s = m * 10 ** (k + 1)
            if s < max_iters:
                steps.append(s)
            else:
                return steps + [max_iters]
        k += 1


def snapshot_schedule(cfg: TrainConfig) -> list[int]:
    """The steps whose weights a run keeps: snapshot_steps (or log-spaced ones), plus every snapshot_every."""
    steps = set(cfg.snapshot_steps or log_spaced_steps(cfg.max_iters))
    if cfg.snapshot_every > 0:
        steps |= set(range(0, cfg.max_iters, cfg.snapshot_every)) | {cfg.max_iters}
    return sorted(steps)
def native_bf16(device: torch.device) -> bool:
    """Train in bfloat16 autocast: only on a CPU with BF16 instructions (AVX-512 BF16 or AMX), where it made
    a step ~15% faster at the same loss; elsewhere it is emulated and slower. GPTVIZ_BF16=0/1 overrides."""
    choice = os.environ.get("GPTVIZ_BF16")
    if choice in ("0", "1"):
        return choice == "1"
    if device.type != "cpu":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux: no way to tell, so no
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_device(name: str = "auto") -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class Status(StrEnum):
    """Where a run is. A StrEnum: it compares equal to its value ("running") and prints as it."""

    READY = "ready"
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    FINISHED = "finished"
    DIVERGED = "diverged"
    ERROR = "error"

    @property
    def done(self) -> bool:
        return self in (Status.STOPPED, Status.FINISHED, Status.DIVERGED, Status.ERROR)


def unexpected_failure(step: int, error: BaseException, kept_step: int | None) -> str:
    """The student's message for a training that raised something other than a GptvizError."""
    kept = f"the weights from step {kept_step} were kept" if kept_step is not None else "no weights were kept"
    return (f"Training failed at step {step} with an unexpected error ({type(error).__name__}: "
            f"{str(error).strip().splitlines()[0][:200] if str(error).strip() else 'no details'}); {kept}. "
            "This is a fault of the server (for example, out of memory) or of gptviz, not of your settings: "
            "try again, or with a smaller model or batch.")


@dataclass
class TrainEvent:
    kind: str  # "step", "eval", "snapshot" or "status"
    step: int
    data: dict = field(default_factory=dict)


_init_lock = threading.Lock()  # model init reads the global RNG: keep seeded inits from interleaving


def build_model(config: GPTConfig, seed: int) -> GPT:
    with _init_lock:
        torch.manual_seed(seed)
        return GPT(config)


@dataclass
class _Loop:
    """What the training loop carries from one step to the next."""

    train_model: torch.nn.Module  # DDP in a process group, else the model itself
    optimizer: torch.optim.Optimizer
    params: list  # listed once: model.parameters() walks every module
    batch_gen: torch.Generator
    tokens_per_step: int
    blown_up: float  # a loss above this has exploded
    start: float = 0.0
    last: float = 0.0
    stop_all: bool = False  # in a process group: some rank asked to stop (agreed at the last step)


def check_data(config: GPTConfig, data: "TokenData"):
    """The text must fit the model: every token has an embedding, and a window of block_size fits."""
    if config.vocab_size < data.tokenizer.vocab_size:
        raise ConfigError(f"The model knows {config.vocab_size} tokens but the tokenizer has "
                          f"{data.tokenizer.vocab_size}.")
    data.check_block_size(config.block_size)


class RunState:
    """What a training shows its watchers, wherever it runs (a Trainer here, a worker's mirror in
    workers.py): status, history, snapshots, speed, and the heartbeat that keeps it going."""

    def __init__(self, abandon_after_s: float | None = None, on_event: Callable[[TrainEvent], None] | None = None):
        self.on_event = on_event
        self.on_finish: Callable[[RunState], None] | None = None  # called once, when the run has ended
        self.snapshots: dict[int, dict[str, torch.Tensor]] = {}
        self.history = {"step": [], "train_loss": [], "lr": [], "eval_step": [], "val_loss": [],
                        "eval_train_loss": [], "samples": []}
        self.events: list[TrainEvent] = []
        self.status = Status.READY  # written only by set_status
        self.message = ""
        self.step = 0
        self.tokens_per_sec = 0.0
        self.eta_s = None
        self.elapsed_s = 0.0
        self.train_s = 0.0  # time in training steps only (no evaluations, samples or snapshots)
        self.threads = 0  # torch threads the training used at its last step (as torch reports them)
        # A UI calls heartbeat() while someone watches; with no heartbeat for abandon_after_s the run stops
        # itself (its browser tab was closed), so nobody's CPU goes to a model no one will look at.
        self.abandon_after_s = abandon_after_s
        self.last_seen = time.monotonic()
        self.abandoned = False
        self.traceback: str | None = None  # of an unexpected failure

    def heartbeat(self):
        self.last_seen = time.monotonic()

    def unwatched(self) -> bool:
        """No heartbeat for abandon_after_s: the student's browser tab was closed."""
        return self.abandon_after_s is not None and time.monotonic() - self.last_seen > self.abandon_after_s

    @property
    def done(self) -> bool:
        return Status(self.status).done

    def set_status(self, status: Status, message: str | None = None):
        """The one place a run's status changes: every change is an event that watchers see."""
        if message is not None:
            self.message = message
        self.status = Status(status)
        self._emit("status", self.step, status=str(self.status), message=self.message)

    def _emit(self, kind: str, step: int, **data):
        event = TrainEvent(kind, step, data)
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)


class Trainer(RunState):
    def __init__(self, model: GPT | GPTConfig, cfg: TrainConfig, data: "TokenData",
                 on_event: Callable[[TrainEvent], None] | None = None, abandon_after_s: float | None = None):
        cfg.validate()
        self.cfg = cfg
        self.data = data
        # Under torchrun (a process group is set up) every rank runs this Trainer in lockstep.
        self.distributed = distributed.active()
        self.rank = distributed.rank() if self.distributed else 0
        self.world_size = distributed.world_size() if self.distributed else 1
        self.is_main = self.rank == 0  # the rank that evaluates, samples and keeps snapshots
        self.device = distributed.training_device(cfg.device) if self.distributed else pick_device(cfg.device)
        self.model = (build_model(model, cfg.seed) if isinstance(model, GPTConfig) else model).to(self.device)
        check_data(self.model.config, data)
        super().__init__(abandon_after_s, on_event)
        self.snapshot_steps = snapshot_schedule(cfg)
        self._good_state: dict[str, torch.Tensor] | None = None  # weights to fall back on, and their step
        self._good_step: int | None = None
        self._stop = threading.Event()
        self._running = threading.Event()  # cleared while paused
        self._running.set()
        self._thread: threading.Thread | None = None
        self._threads_wanted = 0  # set by the queue as trainings start and end; 0: leave torch's count
        self.bf16 = native_bf16(self.device)  # forward passes of training steps in bfloat16 (evaluations: fp32)

    # --- control, callable from any thread --------------------------------------

    def start(self) -> "Trainer":
        self._thread = threading.Thread(target=self._run_safely, name="gptviz-train", daemon=True)
        self._thread.start()
        return self

    def pause(self):
        if self.status == Status.RUNNING:
            self._running.clear()
            self.set_status(Status.PAUSED)

    def resume(self):
        if self.status == Status.PAUSED:
            self.set_status(Status.RUNNING)
            self._running.set()

    def stop(self):
        self._stop.set()
        self._running.set()  # a paused loop must wake up to notice

    def abandon(self):
        """Stop as a run nobody watches (its watcher may live in another process)."""
        self.abandoned = True
        self.stop()

    def set_threads(self, n: int):
        """Use n torch threads from the next step on (the queue shares the cores among the trainings)."""
        self._threads_wanted = n

    def _should_stop(self) -> bool:
        self.abandoned = self.abandoned or self.unwatched()
        return self.abandoned or self._stop.is_set()

    def join(self, timeout: float | None = None):
        if self._thread is not None:
            self._thread.join(timeout)

    # --- the loop ---------------------------------------------------------------

    def run(self) -> GPT:
        """Train in the calling thread; returns the model (raises TrainingError on divergence)."""
        self._run_safely()
        if self.status == Status.DIVERGED:
            raise TrainingError(self.message)
        if self.status == Status.ERROR:
            raise GptvizError(self.message)
        return self.model

    def _run_safely(self):
        """Train; whatever goes wrong ends the run as `error` with its last good weights, never as a
        run that looks alive forever."""
        try:
            self._loop()
        except GptvizError as e:  # a message for the student
            self._fail(str(e))
        except Exception as e:  # a bug, or the machine (out of memory): the server's log gets the traceback
            log.exception("training failed at step %d", self.step)
            self.traceback = traceback.format_exc()  # for a server in another process (workers.py)
            self._fail(unexpected_failure(self.step, e, self._good_step))
        finally:
            if self.on_finish is not None:
                self.on_finish(self)

    def _fail(self, message: str):
        if self._good_state is not None:
            self.model.load_state_dict(self._good_state)
        self.model.eval()
        self.set_status(Status.ERROR, message)

    def _loop(self):
        loop = self._begin()
        for step in range(self.cfg.max_iters + 1):
            self.step = step
            if self.is_main:
                self._observe(step)
            if step == self.cfg.max_iters or loop.stop_all or (not self.distributed and self._should_stop()):
                break
            if not self._wait_while_paused(loop):
                break
            self._use_threads()
            lr = lr_at(step, self.cfg)
            step_start = time.perf_counter()
            loss = self._train_step(step, lr, loop)
            if loss is None:  # diverged: the run has ended
                return
            self._record(step, loss, lr, step_start, loop)
        self._finish(loop)

    def _begin(self) -> _Loop:
        cfg, model = self.cfg, self.model
        loop = _Loop(
            train_model=self._wrap(model),
            optimizer=make_optimizer(model, cfg, self.device),
            params=list(model.parameters()),
            # Each rank draws its own batches (rank 0, like a single process, from `seed`).
            batch_gen=torch.Generator().manual_seed(cfg.seed + self.rank),
            tokens_per_step=cfg.batch_size * model.config.block_size * cfg.grad_accum_steps * self.world_size,
            blown_up=BLOWN_UP * math.log(model.config.vocab_size),
        )
        self._good_state, self._good_step = _copy_state(model), 0
        self.set_status(Status.RUNNING)
        loop.start = loop.last = time.perf_counter()
        return loop

    def _observe(self, step: int):
        """Snapshots and evaluations (the main rank only)."""
        if step in self.snapshot_steps:
            self._snapshot(step)
        if step % self.cfg.eval_interval == 0 or step == self.cfg.max_iters:
            self._evaluate(step)

    def _wait_while_paused(self, loop: _Loop) -> bool:
        """Block while paused; False when the run should stop instead of going on."""
        if self._running.is_set():
            return True
        paused_at = time.perf_counter()
        while not self._running.wait(timeout=1.0) and not self._should_stop():
            pass
        loop.start += time.perf_counter() - paused_at  # paused time does not count
        loop.last = time.perf_counter()
        return not (self._should_stop() and not self.distributed)  # ranks stop together, after this step

    def _use_threads(self):
        """Follow the queue's share of the cores, in the training's own thread, between two steps."""
        if self._threads_wanted and self._threads_wanted != torch.get_num_threads():
            torch.set_num_threads(self._threads_wanted)
        self.threads = torch.get_num_threads()

    def _train_step(self, step: int, lr: float, loop: _Loop) -> float | None:
        """One optimizer step; returns its loss, or None when the loss blew up (the run is then over)."""
        model = self.model
        for group in loop.optimizer.param_groups:
            group["lr"] = lr
        if not model.training:  # evaluation switched it off (train() walks every module: not each step)
            model.train()
        loss = self._gradients(loop.train_model, loop.optimizer, loop.batch_gen, model.config.block_size)
        if self.distributed:
            # One small all-reduce per step: the loss averaged over all ranks (for the log), and whether
            # any rank wants to stop. Every rank sees the same numbers, so all of them take the same
            # branch below and nobody waits forever in a collective the others left.
            loss_sum, stops = distributed.all_reduce_sum([loss, float(self._should_stop())], self.device)
            loss, loop.stop_all = loss_sum / self.world_size, stops > 0
        if not math.isfinite(loss) or loss > loop.blown_up:
            self._diverged(step, loss)
            return None
        if step % 25 == 0 and step:  # weights whose loss was just fine: to fall back on if it explodes
            self._good_state, self._good_step = _copy_state(model), step
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(loop.params, self.cfg.grad_clip)
        loop.optimizer.step()
        return loss

    def _record(self, step: int, loss: float, lr: float, step_start: float, loop: _Loop):
        """Speed, time left and the loss curve after one step."""
        now = time.perf_counter()
        self.train_s += now - step_start
        self.elapsed_s = now - loop.start
        rate = loop.tokens_per_step / max(now - loop.last, 1e-9)
        self.tokens_per_sec = 0.9 * self.tokens_per_sec + 0.1 * rate if step else rate
        loop.last = now
        self.eta_s = (self.cfg.max_iters - step - 1) * loop.tokens_per_step / max(self.tokens_per_sec, 1e-9)
        self.history["step"].append(step)
        self.history["train_loss"].append(loss)
        self.history["lr"].append(lr)
        self._emit("step", step, train_loss=loss, lr=lr, tokens_per_sec=self.tokens_per_sec,
                   eta_s=self.eta_s, elapsed_s=self.elapsed_s)

    def _finish(self, loop: _Loop):
        self.elapsed_s = time.perf_counter() - loop.start
        self.eta_s = 0.0
        self.model.eval()
        if self.abandoned:
            self.set_status(Status.STOPPED, f"Stopped at step {self.step}: nobody watched for "
                            f"{self.abandon_after_s or 0:.0f} s (the browser tab was closed). The weights trained "
                            "so far are kept.")
        elif self._stop.is_set() or loop.stop_all:  # stop_all: another rank asked to stop
            self.set_status(Status.STOPPED, f"Stopped at step {self.step}; the weights trained so far are kept.")
        else:
            self.set_status(Status.FINISHED, f"Finished {self.cfg.max_iters} steps in {self.elapsed_s:.1f} s.")

    def _gradients(self, train_model, optimizer, batch_gen: torch.Generator, block_size: int) -> float:
        """Fill the gradients for one step from grad_accum_steps micro-batches; returns their mean loss.

        Alone, a non-finite loss returns at once (no backward pass). In a process group every rank
        still runs its backward passes, because DDP averages the gradients across ranks inside the last
        one; the non-finite loss then reaches every rank through the step's all-reduce.
        """
        cfg = self.cfg
        accum = cfg.grad_accum_steps
        optimizer.zero_grad(set_to_none=True)
        loss_value = 0.0
        for micro in range(accum):
            x, y = self.data.get_batch("train", cfg.batch_size, block_size, batch_gen, self.device)
            # DDP's no_sync(): keep this micro-batch's gradients local; the last backward averages the sum.
            sync = not self.distributed or micro == accum - 1
            with contextlib.nullcontext() if sync else train_model.no_sync():
                with torch.autocast("cpu", torch.bfloat16, enabled=self.bf16):  # the forward pass only
                    _, loss = train_model(x, y)
                value = loss.item()
                loss_value += value / accum
                if not math.isfinite(value) and not self.distributed:
                    return value
                (loss / accum if accum > 1 else loss).backward()
        return loss_value

    def _wrap(self, model: GPT):
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        # Construction copies rank 0's weights to every rank. Dropout masks differ per rank from here on.
        torch.manual_seed(self.cfg.seed + self.rank)
        return DistributedDataParallel(model, device_ids=[self.device] if self.device.type == "cuda" else None)

    def _diverged(self, step: int, loss: float):
        self.model.load_state_dict(self._good_state)
        self.model.eval()
        guess = math.log(self.model.config.vocab_size)
        what = (f"The loss became {'NaN (not a number)' if math.isnan(loss) else 'infinite'} at step {step}"
                if not math.isfinite(loss) else
                f"The loss shot up to {loss:,.0f} at step {step}, more than {BLOWN_UP} times a random guess "
                f"({guess:.2f})")
        self.set_status(Status.DIVERGED, (
            f"{what}: the learning rate ({self.cfg.learning_rate:g}) is probably too high. Training stopped "
            f"and the weights from step {self._good_step} were kept. Try a learning rate about 3x lower "
            f"(such as {self.cfg.learning_rate / 3:.1g})."
        ))

    @torch.no_grad()
    def _evaluate(self, step: int):
        """Average loss over the same eval_iters batches each time, so that evaluations compare."""
        model, cfg = self.model, self.cfg
        model.eval()
        losses = {}
        for split in ("train", "val"):
            gen = torch.Generator().manual_seed(cfg.seed + 1)
            total = 0.0
            for _ in range(cfg.eval_iters):
                x, y = self.data.get_batch(split, cfg.batch_size, model.config.block_size, gen, self.device)
                total += model(x, y)[1].item()
            losses[split] = total / cfg.eval_iters
        sample = self._sample() if cfg.sample_tokens else ""
        self.history["eval_step"].append(step)
        self.history["val_loss"].append(losses["val"])
        self.history["eval_train_loss"].append(losses["train"])
        self.history["samples"].append(sample)
        self._emit("eval", step, val_loss=losses["val"], train_loss=losses["train"], sample=sample)

    def _sample(self) -> str:
        from .generate import generate  # generation imports the model only; keep start-up light

        prompt = self.data.tokenizer.encode("\n") if self._encodes_newline() else [0]
        ids = generate(self.model, prompt, self.cfg.sample_tokens, seed=self.cfg.seed, top_k=None)
        return self.data.tokenizer.decode(ids)

    def _encodes_newline(self) -> bool:
        try:
            return len(self.data.tokenizer.encode("\n")) > 0
        except GptvizError:
            return False

    def _snapshot(self, step: int):
        # half precision: snapshots are for looking at, and there may be many of them
        self.snapshots[step] = {k: v.detach().to("cpu", torch.float16) for k, v in self.model.state_dict().items()}
        self._emit("snapshot", step)


def make_optimizer(model: GPT, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on biases, LayerNorms)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(0.9, cfg.beta2), fused=device.type != "mps")


def _copy_state(model: GPT) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
