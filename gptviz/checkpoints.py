"""Checkpoints: one .safetensors file holding the weights, with everything else as JSON in its header.

safetensors stores raw tensors and nothing executable, so loading a checkpoint someone shared
cannot run code (a pickled .pt file can). Writes go to a temporary file that replaces the old
one in a single rename, so a crash mid-save leaves the previous checkpoint whole.
"""

from __future__ import annotations

import json
import os
import re
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from . import tokenizers
from .errors import CheckpointError, GptvizError
from .model import GPT, GPTConfig

FORMAT = "gptviz-checkpoint/1"
SUFFIX = ".safetensors"
CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
REQUIRED_CONFIG = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd")
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


def to_bytes(model: GPT, tokenizer: tokenizers.Tokenizer, meta: dict | None = None,
             snapshots: dict[int, dict[str, torch.Tensor]] | None = None) -> bytes:
    """The checkpoint as one file's bytes (also what the app offers for download)."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for step, state in (snapshots or {}).items():
        tensors.update({f"snapshot.{step}.{k}": v.detach().cpu().contiguous() for k, v in state.items()})
    header = {
        "format": FORMAT,
        "config": json.dumps(model.config.to_dict()),
        "tokenizer": json.dumps(tokenizer.to_dict()),
        "meta": json.dumps(meta or {}),
    }
    return save_tensors(tensors, metadata=header)


def save_checkpoint(path: Path | str, model: GPT, tokenizer: tokenizers.Tokenizer, meta: dict | None = None,
                    snapshots: dict[int, dict[str, torch.Tensor]] | None = None) -> Path:
    path = Path(path)
    data = to_bytes(model, tokenizer, meta, snapshots)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a checkpoint is meant to be shared
        os.replace(tmp, path)  # atomic: readers see the old file or the new one, never half of one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(source: Path | str | bytes) -> Checkpoint:
    """Load from a path or from a file's bytes (an upload)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise CheckpointError(f"There is no checkpoint file at {path}.")
        data = path.read_bytes()
    else:
        data = bytes(source)
    header = _read_header(data)
    try:
        tensors = load_tensors(data)
    except SafetensorError as e:
        raise CheckpointError(f"The checkpoint file is damaged or incomplete ({e}).") from None

    config_dict = _json_field(header, "config")
    missing = [k for k in REQUIRED_CONFIG if k not in config_dict]
    if missing:
        raise CheckpointError(f"The checkpoint's model settings lack {', '.join(missing)}.")
    try:
        config = GPTConfig.from_dict(config_dict)
        tokenizer = tokenizers.from_dict(_json_field(header, "tokenizer"))
    except (GptvizError, TypeError, ValueError) as e:
        raise CheckpointError(f"The checkpoint's settings cannot be used: {e}") from None

    with torch.device("meta"):  # no random initialisation: every weight comes from the file
        model = GPT(config)
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    _load_weights(model, weights)
    model.eval()
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("snapshot."):
            _, step, name = k.split(".", 2)
            snapshots.setdefault(int(step), {})[name] = v
    return Checkpoint(model, tokenizer, _json_field(header, "meta"), dict(sorted(snapshots.items())))


def _load_weights(model: GPT, weights: dict[str, torch.Tensor]):
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise CheckpointError(f"The checkpoint lacks weights for {', '.join(missing[:5])}.")
    wrong = [f"{k} {tuple(weights[k].shape)} (expected {tuple(v.shape)})"
             for k, v in expected.items() if weights[k].shape != v.shape]
    if wrong:
        raise CheckpointError("The weights do not match the model settings: " + "; ".join(wrong[:3]))
    model.load_state_dict(weights, assign=True)


def _read_header(data: bytes) -> dict:
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
    try:
        header = json.loads(data[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError("This is not a safetensors checkpoint (its header is not JSON).") from None
    meta = header.get("__metadata__") or {}
    if meta.get("format") != FORMAT:
        raise CheckpointError("This safetensors file was not written by gptviz (it has no gptviz settings).")
    return meta


def _json_field(header: dict, name: str) -> dict:
    try:
        value = json.loads(header[name])
    except KeyError:
        raise CheckpointError(f"The checkpoint has no {name!r} section.") from None
    except json.JSONDecodeError:
        raise CheckpointError(f"The checkpoint's {name!r} section is not valid JSON.") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"The checkpoint's {name!r} section is not a JSON object.")
    return value
