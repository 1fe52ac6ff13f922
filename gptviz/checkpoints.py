"""Checkpoints: one .safetensors file holding the weights, with everything else as JSON in its header.

safetensors stores raw tensors and nothing executable, so loading a checkpoint someone shared
cannot run code (a pickled .pt file can). Writes go to a temporary file that replaces the old
one in a single rename, so a crash mid-save leaves the previous checkpoint whole.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from . import limits, tokenizers
from .errors import CheckpointError, GptvizError
from .model import GPT, GPTConfig

FORMAT = "gptviz-checkpoint/1"
SUFFIX = ".safetensors"
CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
REQUIRED_CONFIG = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd")
QUOTA_ENV = "GPTVIZ_CHECKPOINT_QUOTA_MB"  # how much the checkpoints/ folder may hold (students save into it)
DEFAULT_QUOTA_MB = 2048
MAX_JSON_DIGITS = 18  # a number in a checkpoint's JSON: more digits are damage (Python refuses 4,300+)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass
class Checkpoint:
    model: GPT
    tokenizer: tokenizers.Tokenizer
    meta: dict = field(default_factory=dict)  # training config, loss history, corpus name, ...
    snapshots: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)  # step -> weights


def checkpoint_path(name: str, root: Path | str = CHECKPOINT_DIR) -> Path:
    """The file for a user-given name, refusing anything that could leave `root`."""
    stem = name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name
    if not _NAME.fullmatch(stem) or ".." in stem:
        raise CheckpointError(
            f"{name!r} cannot be a checkpoint name: use 1-64 letters, digits, '-', '_' or '.', "
            "starting with a letter or digit (no '/' and no '..')."
        )
    root = Path(root).resolve()
    path = (root / (stem + SUFFIX)).resolve()
    if path.parent != root:
        raise CheckpointError(f"{name!r} would be saved outside the checkpoints folder.")
    return path


def free_name(stem: str, root: Path | str = CHECKPOINT_DIR) -> str:
    """`stem`, or else stem-2, stem-3, ...: the first name that no checkpoint in `root` has yet."""
    name, n = stem, 1
    while (Path(root) / (name + SUFFIX)).exists():
        n += 1
        name = f"{stem}-{n}"
    return name


def list_checkpoints(root: Path | str = CHECKPOINT_DIR) -> list[Path]:
    root = Path(root)
    return sorted(root.glob("*" + SUFFIX)) if root.is_dir() else []


def fitting_snapshots(snapshots: dict[int, dict[str, torch.Tensor]], room: int) -> list[int]:
    """The steps of the snapshots to keep in `room` bytes: the first and the last first, then the others
    spread evenly over the timeline (a large model's download keeps fewer, so it still opens again)."""
    steps = sorted(snapshots)
    if not steps:
        return []
    size = sum(t.numel() * t.element_size() for t in snapshots[steps[0]].values())
    n = min(len(steps), room // max(size, 1))
    if n >= len(steps):
        return steps
    if n < 2:
        return steps[-1:] if n == 1 else []
    return sorted({steps[round(i * (len(steps) - 1) / (n - 1))] for i in range(n)})


def to_bytes(model: GPT, tokenizer: tokenizers.Tokenizer, meta: dict | None = None,
             snapshots: dict[int, dict[str, torch.Tensor]] | None = None,
             max_bytes: int = limits.CHECKPOINT_MAX_BYTES) -> bytes:
    """The checkpoint as one file's bytes (also what the app offers for download), never more than
    max_bytes: the upload limit, so that a download always opens again."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    room = max_bytes - sum(t.numel() * t.element_size() for t in tensors.values()) - 2 * limits.MB  # header
    snapshots = {s: (snapshots or {})[s] for s in fitting_snapshots(snapshots or {}, room)}
    for step, state in snapshots.items():
        tensors.update({f"snapshot.{step}.{k}": v.detach().cpu().contiguous() for k, v in state.items()})
    header = {
        "format": FORMAT,
        "config": json.dumps(model.config.to_dict()),
        "tokenizer": json.dumps(tokenizer.to_dict()),
        "meta": json.dumps(meta or {}),
    }
    return save_tensors(tensors, metadata=header)


def quota_bytes() -> int:
    """GPTVIZ_CHECKPOINT_QUOTA_MB, else 2 GB: what the checkpoints folder may hold in all."""
    try:
        return max(0, int(os.environ.get(QUOTA_ENV, DEFAULT_QUOTA_MB))) * limits.MB
    except ValueError:
        return DEFAULT_QUOTA_MB * limits.MB


def folder_bytes(root: Path | str) -> int:
    return sum(p.stat().st_size for p in list_checkpoints(root))


def _check_quota(root: Path, adding: int, quota: int):
    used = folder_bytes(root)
    if used + adding > quota:
        raise CheckpointError(
            f"The server's checkpoints folder is full ({used / limits.MB:,.0f} MB of {quota / limits.MB:,.0f} MB; "
            f"this model needs {adding / limits.MB:,.1f} MB). Download the model instead, or ask your teacher "
            "to make room.")


def save_checkpoint(path: Path | str, model: GPT, tokenizer: tokenizers.Tokenizer, meta: dict | None = None,
                    snapshots: dict[int, dict[str, torch.Tensor]] | None = None, overwrite: bool = True,
                    quota: int | None = None) -> Path:
    """Write atomically: readers see the old file or the new one, never half of one. overwrite=False
    (the app) refuses a name that exists, even one a classmate took a moment ago; quota bounds the folder."""
    path = Path(path)
    data = to_bytes(model, tokenizer, meta, snapshots)
    path.parent.mkdir(parents=True, exist_ok=True)
    if quota is not None:
        _check_quota(path.parent, len(data), quota)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a checkpoint is meant to be shared
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _link_new(tmp: str, path: Path):
    """Give the finished file its name only if nobody has it: link() fails on an existing name, atomically."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise CheckpointError(f"The name {path.stem!r} was just taken by someone else: choose another.") from None


def load_checkpoint(source: Path | str | bytes, max_bytes: int = limits.CHECKPOINT_MAX_BYTES,
                    for_app: bool = True) -> Checkpoint:
    """Load from a path or from a file's bytes (an upload).

    Everything is checked against the header before any tensor is read or any model is built
    (a damaged or hostile file cannot make us allocate what it asks for), and every failure is a
    CheckpointError whose message a student can act on. for_app: the model must be one the Train page
    could make (limits.check_openable); the command line opens any size.
    """
    data = _read_source(source, max_bytes)
    header, entries = _read_header(data)
    config = _read_config(header, entries)
    if for_app:
        limits.check_openable(config)
    tokenizer = _read_tokenizer(header, config)
    meta = _read_meta(header)
    with torch.device("meta"):  # shapes only, no memory and no random initialisation: weights come from the file
        model = GPT(config)
    snapshot_names = _check_entries(entries, {k: tuple(v.shape) for k, v in model.state_dict().items()})
    try:
        tensors = load_tensors(data)
    except (SafetensorError, ValueError, TypeError, OverflowError) as e:
        raise CheckpointError(f"The checkpoint file is damaged or incomplete ({str(e)[:200]}).") from None

    weights = {k[len("model."):]: _float(k, v) for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(weights, assign=True)  # names and shapes were checked against the header
    model.eval()
    _check_predicts(model)
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    for key, (step, name) in snapshot_names.items():
        snapshots.setdefault(step, {})[name] = _finite(key, tensors[key])
    return Checkpoint(model, tokenizer, meta, dict(sorted(snapshots.items())))


def _read_source(source: Path | str | bytes, max_bytes: int) -> bytes:
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise CheckpointError(f"There is no checkpoint file at {path}.")
        _check_size(path.stat().st_size, max_bytes)  # before reading it
        return path.read_bytes()
    _check_size(len(source), max_bytes)
    return source if isinstance(source, bytes) else bytes(source)


def _check_size(size: int, max_bytes: int):
    if size > max_bytes:
        raise CheckpointError(f"The file is {size / limits.MB:,.1f} MB; a checkpoint can be at most "
                              f"{max_bytes / limits.MB:,.0f} MB (the largest model the app trains).")


def _read_header(data: bytes) -> tuple[dict, dict]:
    """The gptviz settings (strings) and the tensor entries ({name: {dtype, shape, data_offsets}})."""
    if len(data) < 9:
        raise CheckpointError("The checkpoint file is empty or cut off.")
    # safetensors: 8 bytes of header length, then the JSON header
    if data[8:9] != b"{" and (data[:2] == b"PK" or data[:1] == b"\x80"):  # zip (torch.save) or pickle
        raise CheckpointError(
            "This is a pickled PyTorch file (.pt/.pth). gptviz only loads .safetensors checkpoints, "
            "because opening a pickle can run any code hidden inside it."
        )
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise CheckpointError("The checkpoint file is cut off: its header is incomplete.")
    header = _json(data[8 : 8 + n], "This is not a safetensors checkpoint (its header is not JSON).")
    meta = header.pop("__metadata__", None) if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError("This safetensors file was not written by gptviz (it has no gptviz settings).")
    if not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError("The checkpoint's settings are damaged (each must be a JSON text).")
    for name, e in header.items():
        ok = (isinstance(e, dict) and isinstance(e.get("shape"), list)
              and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40 for d in e["shape"]))
        if not ok:
            raise CheckpointError(f"The checkpoint's entry for {name[:60]!r} is damaged (no valid shape).")
    return meta, header


def _json(text: bytes | str, message: str):
    try:
        return json.loads(text, parse_int=_bounded_int, parse_float=_finite_float, parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # RecursionError: "[[[[..." nested
        raise CheckpointError(message) from None
    except ValueError as e:  # a number we refuse (see below)
        raise CheckpointError(f"{message[:-1]}: {e}") from None


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_DIGITS:
        raise ValueError(f"it holds a {len(text):,}-digit number")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"it holds the number {text[:20]}, too large to be a float")
    return value


def _no_constant(text: str):
    raise ValueError(f"it holds {text}, which is not a number")


def _json_field(header: dict, name: str) -> dict:
    if name not in header:
        raise CheckpointError(f"The checkpoint has no {name!r} section.")
    value = _json(header[name], f"The checkpoint's {name!r} section is not valid JSON.")
    if not isinstance(value, dict):
        raise CheckpointError(f"The checkpoint's {name!r} section is not a JSON object.")
    return value


def _read_config(header: dict, entries: dict) -> GPTConfig:
    config_dict = _json_field(header, "config")
    missing = [k for k in REQUIRED_CONFIG if k not in config_dict]
    if missing:
        raise CheckpointError(f"The checkpoint's model settings lack {', '.join(missing)}.")
    try:
        config = GPTConfig.from_dict(config_dict)
    except GptvizError as e:
        raise CheckpointError(f"The checkpoint's settings cannot be used: {e}") from None
    # the weights must all come from the file: settings that need more bytes than it holds are damaged
    stored = sum(_entry_bytes(e) for name, e in entries.items() if name.startswith("model."))
    needed = config.num_params() * 2  # at least 2 bytes per weight (float16)
    if needed > stored:
        raise CheckpointError(
            f"The checkpoint's settings describe a model of {config.num_params():,} parameters, more than "
            f"its file holds weights for: the settings or the file are damaged."
        )
    return config


def _entry_bytes(entry: dict) -> int:
    return math.prod(entry["shape"]) * _DTYPE_BYTES.get(entry.get("dtype"), 0)


def _read_tokenizer(header: dict, config: GPTConfig) -> tokenizers.Tokenizer:
    try:
        tokenizer = tokenizers.from_dict(_json_field(header, "tokenizer"))
    except GptvizError as e:
        raise CheckpointError(f"The checkpoint's settings cannot be used: {e}") from None
    if tokenizer.vocab_size > config.vocab_size:  # ids the model has no row for would crash a forward pass
        raise CheckpointError(
            f"The checkpoint's tokenizer has {tokenizer.vocab_size:,} tokens but its model only "
            f"{config.vocab_size:,}: the file is damaged."
        )
    return tokenizer


# meta fields the app reads, and what they must be; other fields are kept as they are
_META_FIELDS = {"corpus": str, "preset": str, "status": str, "history": dict, "train_config": dict}
_HISTORY = {"step": "step", "eval_step": "step", "train_loss": "number", "lr": "number", "val_loss": "number",
            "eval_train_loss": "number", "samples": "text"}  # a list of each, per evaluation or step
_HISTORY_OK = {
    "step": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "number": lambda v: v is None or isinstance(v, (int, float)) and not isinstance(v, bool),
    "text": lambda v: isinstance(v, str),
}


def _read_meta(header: dict) -> dict:
    meta = _json_field(header, "meta")
    for name, kind in _META_FIELDS.items():
        if name in meta and not isinstance(meta[name], kind):
            raise CheckpointError(f"The checkpoint's {name!r} record is damaged.")
    for name, values in meta.get("history", {}).items():
        ok = _HISTORY_OK[_HISTORY.get(name, "number")] if name in _HISTORY else (lambda v: True)
        if not isinstance(values, list) or not all(ok(v) for v in values):
            raise CheckpointError(f"The checkpoint's training history ({name!r}) is damaged.")
    return meta


_DTYPE_BYTES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}  # floating point: what weights can be
_SNAPSHOT = re.compile(r"snapshot\.([0-9]{1,9})\.(.+)")


def _check_entries(entries: dict, expected: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, str]]:
    """Every tensor's name, dtype and shape against the model, from the header alone.
    Returns the snapshot tensors: key -> (step, weight name)."""
    snapshots: dict[str, tuple[int, str]] = {}
    for key, e in entries.items():
        m = _SNAPSHOT.fullmatch(key)
        if m:
            snapshots[key] = (int(m[1]), m[2])
            name = m[2]
        elif key.startswith("model."):
            name = key[len("model."):]
        else:
            raise CheckpointError(f"The checkpoint holds a tensor gptviz does not know: {key[:80]!r}.")
        if name not in expected:
            raise CheckpointError(f"The checkpoint has weights this model does not have: {key[:80]!r}.")
        if e.get("dtype") not in _DTYPE_BYTES:
            raise CheckpointError(f"The checkpoint's {key} is stored as {str(e.get('dtype'))[:20]}, "
                                  "not as floating-point numbers.")
        if tuple(e["shape"]) != expected[name]:
            raise CheckpointError(f"The weights do not match the model settings: {key} "
                                  f"{tuple(e['shape'])} (expected {expected[name]}).")
    missing = sorted(set(expected) - {k[len("model."):] for k in entries if k.startswith("model.")})
    if missing:
        raise CheckpointError(f"The checkpoint lacks weights for {', '.join(missing[:5])}.")
    steps: dict[int, int] = {}
    for step, _ in snapshots.values():
        steps[step] = steps.get(step, 0) + 1
    partial = [s for s, n in steps.items() if n != len(expected)]
    if partial:
        raise CheckpointError(f"The checkpoint's training-timeline snapshot of step {partial[0]} is incomplete.")
    return snapshots


def _finite(key: str, t: torch.Tensor) -> torch.Tensor:
    # numpy: one thread and no dispatch cost, ~40x faster than torch.isfinite on small tensors on a busy host
    values = t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()
    if not np.isfinite(values).all():
        raise CheckpointError(
            f"The checkpoint's {key} holds NaN or infinite numbers: the training that saved it had "
            "diverged, so the model cannot predict anything. Train it again with a lower learning rate."
        )
    return t


def _float(key: str, t: torch.Tensor) -> torch.Tensor:
    """A model weight as float32 (the model computes in float32), checked to be finite."""
    return _finite(key, t).float()


def _check_predicts(model: GPT):
    """One token through the model: finite weights can still be so large that every logit overflows."""
    with torch.no_grad():
        logits, _ = model(torch.zeros(1, 1, dtype=torch.long))
    if not torch.isfinite(logits).all():
        raise CheckpointError("The checkpoint's weights are so large that the model's predictions overflow "
                              "(infinite or NaN): the training that saved it had diverged. Train it again "
                              "with a lower learning rate.")
