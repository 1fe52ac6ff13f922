import json
import signal
import struct
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import save_file

from gptviz import tokenizers
from gptviz.checkpoints import (CheckpointError, checkpoint_path, free_name, list_checkpoints, load_checkpoint,
                                save_checkpoint, to_bytes)
from gptviz.model import GPT, GPTConfig


@pytest.fixture
def saved(tmp_path, small_model, shakespeare_char):
    snaps = {0: {k: v.half() for k, v in small_model.state_dict().items()}}
    meta = {"corpus": "tinyshakespeare", "history": {"val_loss": [4.1, 2.5]}}
    path = save_checkpoint(tmp_path / "m.safetensors", small_model, shakespeare_char.tokenizer, meta, snaps)
    return path, small_model, shakespeare_char.tokenizer, meta, snaps


def test_round_trip_is_bit_identical(saved):
    path, model, tok, meta, snaps = saved
    ck = load_checkpoint(path)
    assert ck.model.config == model.config
    for (k, a), b in zip(model.state_dict().items(), ck.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert ck.meta == meta
    assert ck.tokenizer.to_dict() == tok.to_dict()
    assert ck.tokenizer.encode("To be, or not") == tok.encode("To be, or not")
    assert list(ck.snapshots) == [0] and torch.equal(ck.snapshots[0]["wte.weight"], snaps[0]["wte.weight"])
    idx = torch.tensor([tok.encode("ROMEO:")])
    assert torch.equal(ck.model(idx)[0], model(idx)[0])
    assert not ck.model.training


def test_loads_from_uploaded_bytes_too(saved):
    path, model, *_ = saved
    ck = load_checkpoint(path.read_bytes())
    assert torch.equal(ck.model.wte.weight, model.wte.weight)


@pytest.mark.parametrize("kind", ["gpt2", "bpe"])
def test_bpe_and_gpt2_tokenizers_survive_the_round_trip(tmp_path, kind):
    tok = tokenizers.build(kind, "the theme of these thin threads " * 20, 270 if kind == "bpe" else None)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=1, n_embd=8))
    ck = load_checkpoint(save_checkpoint(tmp_path / "t.safetensors", model, tok))
    assert ck.tokenizer.encode("these threads") == tok.encode("these threads")


def test_a_pickle_is_refused_without_being_opened(tmp_path, small_model):
    bad = tmp_path / "model.pt"
    torch.save(small_model.state_dict(), bad)
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(bad)
    import pickle
    (tmp_path / "raw.pkl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(tmp_path / "raw.pkl")


def test_a_truncated_file_is_refused(saved, tmp_path):
    data = saved[0].read_bytes()
    for cut in (4, 100, len(data) - 10):
        (tmp_path / "cut.safetensors").write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="cut off|damaged|incomplete|empty"):
            load_checkpoint(tmp_path / "cut.safetensors")


def _rewrite(path, tensors, metadata):
    save_file(tensors, str(path), metadata=metadata)
    return path


def _parts(path):
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def test_missing_config_fields_are_refused(saved, tmp_path):
    tensors, meta = _parts(saved[0])
    config = json.loads(meta["config"])
    del config["n_embd"]
    bad = _rewrite(tmp_path / "b.safetensors", tensors, {**meta, "config": json.dumps(config)})
    with pytest.raises(CheckpointError, match="lack n_embd"):
        load_checkpoint(bad)
    no_tok = {k: v for k, v in meta.items() if k != "tokenizer"}
    with pytest.raises(CheckpointError, match="tokenizer"):
        load_checkpoint(_rewrite(tmp_path / "c.safetensors", tensors, no_tok))
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(_rewrite(tmp_path / "d.safetensors", tensors, {**meta, "meta": "{oops"}))


def test_weights_that_do_not_fit_the_config_are_refused(saved, tmp_path):
    tensors, meta = _parts(saved[0])
    tensors["model.wte.weight"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError, match=r"wte.weight \(3, 3\)"):
        load_checkpoint(_rewrite(tmp_path / "s.safetensors", tensors, meta))


def test_a_foreign_safetensors_file_is_refused(tmp_path):
    path = _rewrite(tmp_path / "other.safetensors", {"w": torch.zeros(2)}, {"format": "pt"})
    with pytest.raises(CheckpointError, match="not written by gptviz"):
        load_checkpoint(path)


@pytest.mark.parametrize("name", ["../evil", "a/b", "/etc/passwd", "..", ".hidden", "", "x" * 65, "a..b"])
def test_names_cannot_leave_the_checkpoint_folder(tmp_path, name):
    with pytest.raises(CheckpointError, match="cannot be a checkpoint name|outside"):
        checkpoint_path(name, tmp_path)


def test_good_names_land_inside_the_folder(tmp_path):
    path = checkpoint_path("shakespeare-char_v2", tmp_path)
    assert path == (tmp_path / "shakespeare-char_v2.safetensors").resolve()
    assert checkpoint_path("a.safetensors", tmp_path).name == "a.safetensors"


def test_listing_finds_saved_checkpoints(saved, tmp_path):
    assert list_checkpoints(tmp_path) == [saved[0]]
    assert list_checkpoints(tmp_path / "missing") == []


CHILD = """
import sys, torch
from gptviz import tokenizers
from gptviz.checkpoints import save_checkpoint
from gptviz.model import GPT, GPTConfig
torch.manual_seed(1)
model = GPT(GPTConfig(vocab_size=65, block_size=256, n_layer=8, n_head=8, n_embd=512))  # ~100 MB
tok = tokenizers.build("char", "".join(chr(32 + i) for i in range(65)))
print("saving", flush=True)
while True:
    save_checkpoint(sys.argv[1], model, tok, {"version": 2})
"""


def test_a_killed_save_leaves_the_previous_checkpoint_whole(tmp_path, small_model, shakespeare_char):
    path = save_checkpoint(tmp_path / "m.safetensors", small_model, shakespeare_char.tokenizer, {"version": 1})
    for delay in (0.05, 0.3, 0.8):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "saving"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        ck = load_checkpoint(path, for_app=False)  # whatever the moment of the kill, the file is one whole checkpoint
        assert ck.meta["version"] in (1, 2)
    for leftover in tmp_path.glob(".*.tmp"):  # the half-written temporary files are all that is lost
        leftover.unlink()


def test_download_bytes_hold_the_same_checkpoint(saved):
    path, model, tok, meta, snaps = saved
    data = to_bytes(model, tok, meta, snaps)
    assert len(data) == path.stat().st_size
    (n,) = struct.unpack("<Q", data[:8])
    assert json.loads(data[8:8 + n])["__metadata__"]["format"] == "gptviz-checkpoint/1"
    ck = load_checkpoint(data)
    assert ck.meta == meta and torch.equal(ck.model.lm_head.weight, model.lm_head.weight)


def test_a_free_name_never_replaces_a_checkpoint(tmp_path, small_model, shakespeare_char):
    assert free_name("gpt-shakespeare", tmp_path) == "gpt-shakespeare"
    for stem in ("gpt-shakespeare", "gpt-shakespeare-2"):
        save_checkpoint(tmp_path / f"{stem}.safetensors", small_model, shakespeare_char.tokenizer)
    assert free_name("gpt-shakespeare", tmp_path) == "gpt-shakespeare-3"
    assert free_name("other", tmp_path) == "other"


# ---------------------------------------------------------------- validation on load (issue: trust no file)


def _with_header(data: bytes, edit) -> bytes:
    """The file's bytes with its JSON header changed by edit(header) (the tensors' bytes unchanged)."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    edit(header)
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data[8 + n:]


def _edit_section(name, **changes):
    def edit(header):
        section = json.loads(header["__metadata__"][name])
        section.update(changes)
        header["__metadata__"][name] = json.dumps(section)
    return edit


@pytest.mark.parametrize("key", ["snapshot.abc.wte.weight", "snapshot.5", "snapshot.-1.wte.weight",
                                 "snapshot.².wte.weight", "snapshot.3.not_a_weight"])
def test_odd_snapshot_keys_are_refused_with_a_message(saved, key):
    def rename(header):
        header[key] = header.pop("snapshot.0.wte.weight")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(_with_header(saved[0].read_bytes(), rename))
    assert "snapshot" in str(e.value) or key in str(e.value)


def test_snapshot_shapes_are_checked_on_load(saved, tmp_path):
    tensors, meta = _parts(saved[0])
    tensors["snapshot.0.wpe.weight"] = tensors["snapshot.0.wpe.weight"][:-1].contiguous()
    with pytest.raises(CheckpointError, match=r"snapshot.0.wpe.weight \(15, 32\) \(expected \(16, 32\)\)"):
        load_checkpoint(_rewrite(tmp_path / "s.safetensors", tensors, meta))
    tensors, meta = _parts(saved[0])
    del tensors["snapshot.0.ln_f.bias"]
    with pytest.raises(CheckpointError, match="snapshot of step 0 is incomplete"):
        load_checkpoint(_rewrite(tmp_path / "t.safetensors", tensors, meta))


@pytest.mark.parametrize("changes, words", [
    (dict(n_layer=100_000), "n_layer can be at most"),
    (dict(n_embd=16_384, n_head=1, vocab_size=1_000_000, block_size=16_384), "parameters"),  # ~20 G parameters
    (dict(n_layer=128, n_embd=4096, n_head=64), "parameters"),
    (dict(block_size=2 ** 40), "block_size can be at most"),
    (dict(n_layer=4.0), "whole number"),
    (dict(bias="yes"), "true or false"),
])
def test_absurd_settings_are_refused_before_anything_is_allocated(saved, changes, words):
    import resource
    data = _with_header(saved[0].read_bytes(), _edit_section("config", **changes))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match=words):
        load_checkpoint(data)
    # the model they ask for would take from gigabytes to terabytes; the peak memory did not move
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 50 * 1024  # KiB


def test_nan_weights_are_refused_with_a_message(saved, tmp_path):
    tensors, meta = _parts(saved[0])
    tensors["model.blocks.1.mlp.c_fc.weight"][3, 4] = float("nan")
    with pytest.raises(CheckpointError, match="NaN or infinite.*diverged.*lower learning rate"):
        load_checkpoint(_rewrite(tmp_path / "n.safetensors", tensors, meta))
    tensors, meta = _parts(saved[0])
    tensors["model.lm_head.weight"].fill_(3e38)  # finite, but the logits overflow
    with pytest.raises(CheckpointError, match="overflow"):
        load_checkpoint(_rewrite(tmp_path / "o.safetensors", tensors, meta))


def test_half_precision_weights_load_as_float32(saved, tmp_path):
    tensors, meta = _parts(saved[0])
    tensors = {k: v.half() for k, v in tensors.items()}
    ck = load_checkpoint(_rewrite(tmp_path / "h.safetensors", tensors, meta))
    assert ck.model.wte.weight.dtype == torch.float32
    assert torch.equal(ck.model.wte.weight, tensors["model.wte.weight"].float())


def test_tensors_the_model_does_not_have_are_refused(saved, tmp_path):
    tensors, meta = _parts(saved[0])
    tensors["model.blocks.9.attn.c_attn.weight"] = torch.zeros(2)
    with pytest.raises(CheckpointError, match="weights this model does not have"):
        load_checkpoint(_rewrite(tmp_path / "x.safetensors", tensors, meta))
    tensors, meta = _parts(saved[0])
    tensors["model.wte.weight"] = tensors["model.wte.weight"].long()
    with pytest.raises(CheckpointError, match="not as floating-point"):
        load_checkpoint(_rewrite(tmp_path / "i.safetensors", tensors, meta))


def test_a_tokenizer_bigger_than_the_model_is_refused(saved):
    data = _with_header(saved[0].read_bytes(), _edit_section("tokenizer", kind="gpt2"))
    with pytest.raises(CheckpointError, match="50,257 tokens but its model only [0-9]+"):
        load_checkpoint(data)


@pytest.mark.parametrize("meta", [{"history": []}, {"history": {"step": ["a"]}}, {"corpus": 5},
                                  {"history": {"samples": [1]}}])
def test_damaged_training_records_are_refused(saved, meta):
    data = _with_header(saved[0].read_bytes(), _edit_section("meta", **meta))
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(data)


def test_a_header_that_is_not_an_object_is_refused(saved):
    data = saved[0].read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    for raw in (b"[1, 2]", b"[" * 100_000 + b"]" * 100_000, b'{"__metadata__": [1]}'):
        with pytest.raises(CheckpointError):
            load_checkpoint(struct.pack("<Q", len(raw)) + raw + data[8 + n:])
