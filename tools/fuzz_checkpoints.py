"""Checkpoint fuzzer: damage the bundled checkpoint in thousands of ways and load each result.

Every mutated file must either be refused with a student message (a GptvizError) or load
completely: the model and every timeline snapshot then run a forward pass. Anything else (another
exception, a hang, memory growing without bound) is a bug. Mutations are JSON recipes, so a bug's
recipe can be kept in tests/fuzz_corpus.json and replayed as a regression test.

    python -m tools.fuzz_checkpoints --n 5000            # the long run (README: reliability)
    python -m tools.fuzz_checkpoints --n 500 --seed 7 --bugs bugs.json
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import resource
import struct
import sys
import time
import traceback
from pathlib import Path

import torch

from gptviz.checkpoints import CHECKPOINT_DIR, load_checkpoint
from gptviz.errors import GptvizError
from gptviz.model import GPT

BUNDLED = CHECKPOINT_DIR / "shakespeare-char.safetensors"
CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fuzz_corpus.json"
MAX_RSS_GROWTH_MB = 1024  # a few copies of the 8 MB file and its model; far less than this in practice

# values a JSON field can be damaged into
ODD_VALUES = [0, -1, 1, 2, 3, 7, 64, 65, 100_000, 10**9, 2**63, -(2**63), 1e308, 4.5, "4", "", None, True, False,
              [], {}, [1, 2], {"a": 1}, "\udc00", "x" * 300, float("nan")]
ODD_KEYS = ["snapshot.abc.wte.weight", "snapshot.-1.wte.weight", "snapshot.5", "snapshot..wte.weight",
            "snapshot.².wte.weight", "snapshot.99999999999999999999.wte.weight", "snapshot.7.nope", "model.nope",
            "model.", "wte.weight", "", "snapshot.100.wte.weight ", "__metadata__"]
DTYPES = ["F16", "BF16", "F32", "F64", "I64", "I32", "I8", "U8", "BOOL", "F8_E4M3", "C64", "XYZ", 7, None]


# --------------------------------------------------------------------------- a file as parts


def split(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def join(header, body: bytes) -> bytes:
    raw = json.dumps(header, allow_nan=True).encode("utf-8", "surrogatepass")
    return struct.pack("<Q", len(raw)) + raw + body


# --------------------------------------------------------------------------- mutations as recipes


def random_recipe(rng: random.Random, base: bytes) -> list[dict]:
    """One to three mutations, each a JSON-able dict that `apply` understands."""
    return [_one(rng, base) for _ in range(rng.choice([1, 1, 1, 2, 3]))]


def _one(rng: random.Random, base: bytes) -> dict:
    header, body = split(base)
    names = sorted(k for k in header if k != "__metadata__")
    n_header = len(base) - len(body)
    op = rng.choice(["flip_header", "flip_body", "truncate", "length", "dtype", "shape", "drop", "extra",
                     "rename", "offsets", "config", "tokenizer", "meta", "metadata", "values", "structure",
                     "json_text", "json_text"])
    if op == "flip_header":
        return {"op": "flip", "at": rng.randrange(n_header), "bit": rng.randrange(8)}
    if op == "flip_body":
        return {"op": "flip", "at": rng.randrange(n_header, len(base)), "bit": rng.randrange(8)}
    if op == "truncate":
        return {"op": "truncate", "at": rng.choice([rng.randrange(len(base)), rng.randrange(n_header + 16)])}
    if op == "length":
        return {"op": "length", "value": rng.choice([0, 1, n_header - 9, n_header - 7, len(base), 2**63, 2**64 - 1])}
    if op == "dtype":
        return {"op": "entry", "name": rng.choice(names), "field": "dtype", "value": rng.choice(DTYPES)}
    if op == "shape":
        shape = list(header[rng.choice(names)]["shape"])
        shape = rng.choice([shape[::-1], shape + [1], shape[:-1], [d + rng.choice([-1, 1]) for d in shape],
                            [2**40] + shape[1:], [-1] + shape[1:], ["2"] + shape[1:], [], [0] * len(shape), None])
        return {"op": "entry", "name": rng.choice(names), "field": "shape", "value": shape}
    if op == "drop":
        return {"op": "drop", "name": rng.choice(names)}
    if op == "extra":
        return {"op": "copy", "name": rng.choice(names), "to": rng.choice(ODD_KEYS + ["snapshot.5." + rng.choice(names)[6:]])}
    if op == "rename":
        return {"op": "rename", "name": rng.choice(names), "to": rng.choice(ODD_KEYS)}
    if op == "offsets":
        e = header[rng.choice(names)]["data_offsets"]
        value = rng.choice([[e[1], e[0]], [e[0], e[1] + 4], [e[0] - 4, e[1]], [0, 0], [0, len(body) + 8], None, [e[0]]])
        return {"op": "entry", "name": rng.choice(names), "field": "data_offsets", "value": value}
    if op == "config":
        field = rng.choice(["vocab_size", "block_size", "n_layer", "n_head", "n_embd", "dropout", "bias", "pos_embd",
                            "mlp", "residual", "layernorm", "unknown_setting"])
        return {"op": "json", "section": "config", "path": [field], "value": rng.choice(ODD_VALUES + ["<delete>"])}
    if op == "tokenizer":
        path, value = rng.choice([
            (["kind"], rng.choice(["gpt2", "bpe", "word", "", None, 3])),
            (["chars"], rng.choice(["", "aab", "ab", "\udc00", "x" * 70, None, 5, "\n !$&',-.3:;?" + "A" * 52])),
            (["merges"], rng.choice([[[104, 105]], [[1, 2]] * 5000, "nope", [[1]], None])),
        ])
        return {"op": "json", "section": "tokenizer", "path": path, "value": value}
    if op == "meta":
        path = rng.choice([["history"], ["history", "step"], ["history", "val_loss"], ["corpus"], ["status"],
                           ["train_config"], ["elapsed_s"], ["new_field"]])
        return {"op": "json", "section": "meta", "path": path, "value": rng.choice(ODD_VALUES + ["<delete>"])}
    if op == "json_text":  # the JSON text of a section itself: a character, a number, a hostile tokenizer
        return {"op": "json_text", "section": rng.choice(["tokenizer", "meta", "config"]),
                "how": rng.choice(JSON_TEXT_EDITS), "at": rng.random(), "char": rng.choice('{}[]",:-.0123456789eEaN \\')}
    if op == "metadata":
        key = rng.choice(["format", "config", "tokenizer", "meta", "extra"])
        return {"op": "metadata", "key": key, "value": rng.choice(["<delete>", "", "{", "[]", "null", "1e999",
                                                                   "[" * 100_000, 5, None, "gptviz-checkpoint/2"])}
    if op == "values":
        return {"op": "values", "name": rng.choice(names), "index": rng.randrange(64),
                "value": rng.choice(["nan", "inf", "-inf", "1e30", "65504"])}
    return {"op": "structure", "value": rng.choice(["list", "string", "no_metadata", "metadata_list", "nested",
                                                    "bad_utf8", "empty_object"])}


def apply(recipe: list[dict], base: bytes) -> bytes:
    data = base
    for m in recipe:
        data = _APPLY[m["op"]](m, data)
    return data


def _flip(m, data):
    b = bytearray(data)
    if m["at"] < len(b):
        b[m["at"]] ^= 1 << m["bit"]
    return bytes(b)


def _length(m, data):
    return struct.pack("<Q", m["value"] % 2**64) + data[8:]


def _parsed(data: bytes) -> tuple[dict | None, bytes]:
    """(header, body), or (None, b"") when an earlier mutation made the header unreadable."""
    try:
        header, body = split(data)
    except (ValueError, struct.error, RecursionError):
        return None, b""
    return (header, body) if isinstance(header, dict) else (None, b"")


def _with_header(fn):
    """A mutation of the parsed header (skipped when an earlier mutation made it unreadable)."""
    def run(m, data):
        header, body = _parsed(data)
        if header is None:
            return data
        fn(m, header)
        return join(header, body)
    return run


def _entry(m, header):
    if isinstance(header.get(m["name"]), dict):
        header[m["name"]][m["field"]] = m["value"]


def _drop(m, header):
    header.pop(m["name"], None)


def _copy(m, header):
    if m["name"] in header:
        header[m["to"]] = header[m["name"]]


def _rename(m, header):
    if m["name"] in header:
        header[m["to"]] = header.pop(m["name"])


def _metadata(m, header):
    meta = header.get("__metadata__")
    if isinstance(meta, dict):
        if m["value"] == "<delete>":
            meta.pop(m["key"], None)
        else:
            meta[m["key"]] = m["value"]


def _json_edit(m, header):
    meta = header.get("__metadata__")
    try:
        section = json.loads(meta[m["section"]])
    except (TypeError, KeyError, ValueError, RecursionError):
        return
    target = section
    for key in m["path"][:-1]:
        if not isinstance(target, dict) or not isinstance(target.get(key), dict):
            return
        target = target[key]
    if not isinstance(target, dict):
        return
    if m["value"] == "<delete>":
        target.pop(m["path"][-1], None)
    else:
        target[m["path"][-1]] = m["value"]
    meta[m["section"]] = json.dumps(section, allow_nan=True)


_STRUCTURES = {
    "list": lambda h: [h],
    "string": lambda h: "header",
    "no_metadata": lambda h: {k: v for k, v in h.items() if k != "__metadata__"},
    "metadata_list": lambda h: {**h, "__metadata__": list(h.get("__metadata__", {}).items())},
    "nested": lambda h: {**h, "__metadata__": {**h.get("__metadata__", {}), "meta": "[" * 50_000 + "]" * 50_000}},
    "empty_object": lambda h: {},
}


# how the JSON text of a section is damaged (see _json_text)
JSON_TEXT_EDITS = ["char", "char", "big_int", "nan", "infinity", "huge_float", "doubling_bpe", "long_token", "deep"]


def _json_text(m, header):
    meta = header.get("__metadata__")
    text = meta.get(m["section"]) if isinstance(meta, dict) else None
    if not isinstance(text, str):
        return
    at = int(m["at"] * len(text))
    edits = {
        "char": lambda: text[:at] + m["char"] + text[at + 1:],
        "big_int": lambda: _replace_number(text, at, "9" * 5000),
        "nan": lambda: _replace_number(text, at, "NaN"),
        "infinity": lambda: _replace_number(text, at, "-Infinity"),
        "huge_float": lambda: _replace_number(text, at, "1e999"),
        # each merge joins the previous token with itself: 2**40 bytes from a 1 KB tokenizer
        "doubling_bpe": lambda: json.dumps({"kind": "bpe", "merges": [[32, 32]] + [[256 + i, 256 + i] for i in range(40)]}),
        "long_token": lambda: json.dumps({"kind": "bpe", "merges": [[97, 97]] + [[256 + i, 97] for i in range(3000)]}),
        "deep": lambda: text[:at] + "[" * 20_000 + text[at:],
    }
    meta[m["section"]] = edits[m["how"]]()


def _replace_number(text: str, at: int, new: str) -> str:
    """The first number at or after `at` (else the first one) replaced by `new`."""
    found = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?").search
    m = found(text, at) or found(text)
    return text if m is None else text[:m.start()] + new + text[m.end():]


def _structure(m, data):
    if m["value"] == "bad_utf8":
        (n,) = struct.unpack("<Q", data[:8])
        return data[:9] + b"\xff\xfe" + data[11:] if n > 4 else data
    header, body = _parsed(data)
    return data if header is None else join(_STRUCTURES[m["value"]](header), body)


def _values(m, data):
    """Write a special number into a tensor's bytes (the file stays well-formed)."""
    header, body = _parsed(data)
    e = header.get(m["name"]) if header is not None else None
    if not isinstance(e, dict) or e.get("dtype") not in ("F16", "F32"):
        return data
    fmt, size = ("<e", 2) if e["dtype"] == "F16" else ("<f", 4)
    start, end = e["data_offsets"]
    at = start + (m["index"] * size) % max(end - start, size)
    try:
        raw = struct.pack(fmt, float(m["value"]))
    except OverflowError:  # 1e30 does not fit a float16: use its largest
        raw = struct.pack(fmt, 65504.0)
    offset = len(data) - len(body)
    return data[: offset + at] + raw + data[offset + at + size :]


_APPLY = {"flip": _flip, "truncate": lambda m, d: d[: m["at"]], "length": _length, "entry": _with_header(_entry),
          "drop": _with_header(_drop), "copy": _with_header(_copy), "rename": _with_header(_rename),
          "metadata": _with_header(_metadata), "json": _with_header(_json_edit), "structure": _structure,
          "values": _values, "json_text": _with_header(_json_text)}


# --------------------------------------------------------------------------- one trial


def trial(data: bytes) -> tuple[str, str]:
    """("refused", message) | ("loaded", "") | ("bug", traceback)."""
    try:
        ck = load_checkpoint(data)
    except GptvizError as e:
        msg = str(e)
        if not msg or "Traceback" in msg:
            return "bug", f"unreadable message: {msg!r}"
        return "refused", msg
    except Exception:
        return "bug", traceback.format_exc(limit=6)
    try:
        exercise(ck)
    except Exception:
        return "bug", "loaded, then failed in use:\n" + traceback.format_exc(limit=6)
    return "loaded", ""


def exercise(ck):
    """Use a loaded checkpoint as the app does: encode a prompt, a forward pass, every snapshot's model."""
    ids = ck.tokenizer.encode("ROMEO: hello", unknown="replace")[-ck.model.config.block_size:] or [0]
    idx = torch.tensor([ids])
    with torch.no_grad():
        logits, _ = ck.model(idx)
        assert logits.shape == (1, len(ids), ck.model.config.vocab_size)
        ck.model.run_with_cache(idx)
        for state in ck.snapshots.values():  # what the timeline does with a snapshot (ui/timeline.py)
            with torch.device("meta"):
                model = GPT(ck.model.config)
            model.load_state_dict({k: v.float() for k, v in state.items()}, assign=True)
            model(idx)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # peak so far (KiB on Linux)


def _run_one(rng, base, i, counts, bugs, log):
    recipe = random_recipe(rng, base)
    outcome, detail = trial(apply(recipe, base))
    counts["tried"] += 1
    counts[outcome] += 1
    if outcome == "bug":
        bugs.append({"recipe": recipe, "error": detail.strip().splitlines()[-1][:300]})
        log(f"bug #{len(bugs)} at trial {i}: {bugs[-1]['error']}\n  recipe: {json.dumps(recipe)}")


def fuzz(n: int, seed: int = 0, base: bytes | None = None, log=print) -> dict:
    base = BUNDLED.read_bytes() if base is None else base
    rng = random.Random(seed)
    counts = {"tried": 0, "refused": 0, "loaded": 0, "bug": 0}
    bugs, start_rss, t0 = [], rss_mb(), time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny forward passes: threads only add waiting on a shared host
    try:
        for i in range(n):
            _run_one(rng, base, i, counts, bugs, log)
    finally:
        torch.set_num_threads(threads)
    counts["peak_rss_growth_mb"] = round(rss_mb() - start_rss, 1)
    counts["seconds"] = round(time.perf_counter() - t0, 1)
    counts["bugs"] = bugs
    return counts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="mutated files to try")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bugs", default=None, help="write the recipes of the bugs found to this JSON file")
    args = ap.parse_args(argv)
    r = fuzz(args.n, args.seed)
    if args.bugs:
        Path(args.bugs).write_text(json.dumps(r["bugs"], indent=1))
    print(f"tried {r['tried']}, refused with a message {r['refused']}, loaded and ran {r['loaded']}, "
          f"bugs {r['bug']}; peak RSS grew {r['peak_rss_growth_mb']} MB; {r['seconds']} s (seed {args.seed})")
    ok = r["bug"] == 0 and r["peak_rss_growth_mb"] <= MAX_RSS_GROWTH_MB
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
