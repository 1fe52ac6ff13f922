"""Abuse run: every attack of issue 21, from real sessions, while the 30-student load test runs.

    python -m tools.abuse                                   # 30 students (4 training), 90 s, then the table
    python -m tools.abuse --sessions 30 --trainers 4 --seconds 120 --json abuse.json

One server is started with the app's own limits (plus a short pause limit, so that "pause and walk
away" is seen within the run). The load test's students work as usual (tools/loadtest.py); an attacker
tab runs the attacks one after another over the websocket protocol a browser speaks, uploads
included (the HTTP upload route with its XSRF cookie). For each attack the table gives what the
attacker saw and the class's inspect p95 while it ran; then the class's inspect p95, trainings
finished, server memory against the budget and which processes died.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import torch
from streamlit.proto.WidgetStates_pb2 import WidgetState

from gptviz import memory
from gptviz.checkpoints import to_bytes
from gptviz.model import GPT, GPTConfig
from gptviz.tokenizers import CharTokenizer
from tools import loadtest
from tools.server import ROOT, Server

TIMELINE: list[tuple[float, str, float]] = []  # (when, role, seconds) of every interaction of the class
_record = loadtest.Session.record


def _timed_record(self, role, action, seconds):
    _record(self, role, action, seconds)
    TIMELINE.append((time.monotonic(), role, seconds))


loadtest.Session.record = _timed_record  # the load test's own sessions, with a clock


# --- hostile files ------------------------------------------------------------------------------------

def _checkpoint(config: GPTConfig, tokenizer=None, meta=None) -> bytes:
    tok = tokenizer or CharTokenizer("".join(chr(32 + i) for i in range(config.vocab_size)))
    return to_bytes(GPT(config), tok, meta)


def _with_section(data: bytes, section: str, text: str) -> bytes:
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    header["__metadata__"][section] = text
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + data[8 + n:]


def hostile_files() -> dict[str, bytes]:
    small = GPTConfig(vocab_size=65, block_size=16, n_layer=1, n_head=1, n_embd=16)
    doubling = json.dumps({"kind": "bpe", "merges": [[32, 32]] + [[256 + i, 256 + i] for i in range(40)]})
    return {
        "doubling-bpe": _with_section(_checkpoint(GPTConfig(vocab_size=300, block_size=16, n_layer=1, n_head=1,
                                                            n_embd=16)), "tokenizer", doubling),
        "huge-attention": _checkpoint(GPTConfig(vocab_size=65, block_size=4096, n_layer=1, n_head=16, n_embd=16)),
        "5000-digits": _with_section(_checkpoint(small), "meta", '{"history": {"step": [' + "9" * 5000 + "]}}"),
        "nan-history": _with_section(_checkpoint(small), "meta", '{"history": {"val_loss": [NaN]}}'),
        "pickle": b"PK\x03\x04" + os.urandom(4096),
    }


# --- an attacker's tab --------------------------------------------------------------------------------

class Attacker(loadtest.Session):
    """A tab that also knows its session id (for uploads) and can open a link with a query string."""

    def __init__(self, base: str, timeout: float):
        super().__init__("attacker", "attack", base.replace("http", "ws", 1) + "/_stcore/stream", timeout)
        self.base, self.session_id, self.query = base, "", ""

    def _handle(self, msg):
        if msg.WhichOneof("type") == "new_session":
            self.session_id = msg.new_session.initialize.session_id or self.session_id
        super()._handle(msg)

    async def rerun(self, widgets=(), page_hash: str = "", fragment_id: str = "", auto: bool = False) -> float:
        if self.query:  # the first run of a link carries its query string (what the browser sends)
            from streamlit.proto.BackMsg_pb2 import BackMsg

            back = BackMsg()
            back.rerun_script.query_string = self.query
            back.rerun_script.page_script_hash = page_hash or self.page_hash
            self.query = ""
            self._waiter = asyncio.get_running_loop().create_future()
            self._started = False
            start = time.perf_counter()
            await self.ws.send(back.SerializeToString())
            await asyncio.wait_for(asyncio.shield(self._waiter), self.timeout)
            self._waiter = None
            return time.perf_counter() - start
        return await super().rerun(widgets, page_hash, fragment_id, auto)

    def _put(self, file_id: str, name: str, data: bytes) -> int:
        # the XSRF cookie, which the health check sets as a page load does; a browser echoes it in a header
        cookie = urllib.request.urlopen(self.base + "/_stcore/health").headers.get("Set-Cookie", "")
        xsrf = re.search(r"_streamlit_xsrf=([^;]+)", cookie)
        xsrf = xsrf[1].strip('"') if xsrf else ""
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        req = urllib.request.Request(f"{self.base}/_stcore/upload_file/{self.session_id}/{file_id}", body, method="PUT",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                                              "X-Xsrftoken": xsrf, "Cookie": f"_streamlit_xsrf={xsrf}"})
        try:
            return urllib.request.urlopen(req).status
        except urllib.error.HTTPError as e:
            return e.code

    async def upload(self, key: str, name: str, data: bytes) -> str:
        """Send a file through the sidebar's uploader, as a browser does; returns what the tab then shows."""
        w = self.find(key)
        if w is None:
            raise LookupError(f"no uploader {key!r}")
        file_id = uuid.uuid4().hex
        status = await asyncio.to_thread(self._put, file_id, name, data)
        if status != 204 and status != 200:
            return f"the server refused the upload (HTTP {status})"
        state = WidgetState(id=w.proto.id)
        info = state.file_uploader_state_value.uploaded_file_info.add()
        info.file_id, info.name, info.size = file_id, name, len(data)
        info.file_urls.file_id = file_id
        info.file_urls.upload_url = f"/_stcore/upload_file/{self.session_id}/{file_id}"
        info.file_urls.delete_url = info.file_urls.upload_url
        n = len(self.texts)
        await self.rerun([state])
        said = [t for t in list(self.texts)[n:] if t.startswith(name)]  # the sidebar's message names the file
        return said[-1] if said else f"(no message; the picker now offers: {self.picker_options()})"

    def picker_options(self) -> str:
        w = self.find("model_key")
        return ", ".join(w.proto.options) if w is not None else "?"

    def latest_alert(self, since: int = 0) -> str:
        texts = list(self.texts)[since:]
        return texts[-1] if texts else "(nothing)"


async def attack(a: Attacker, name: str, act) -> dict:
    t0, n0, e0 = time.monotonic(), len(a.texts), len(a.exceptions)
    try:
        seen = await act()
    except Exception as e:  # the attack itself could not be made: say so in the table
        seen = f"could not attack: {type(e).__name__}: {e}"
    t1 = time.monotonic()
    return {"attack": name, "seen": (seen or " | ".join(list(a.texts)[n0:])[-300:] or "(nothing)")[:300],
            "exceptions": a.exceptions[e0:], "start": t0, "end": t1}


async def attacks(base: str, timeout: float, rounds_s: float) -> list[dict]:
    a = Attacker(base, timeout)
    await a.connect()
    await a.rerun()
    results = []
    a.query = "train_n_layer=128&train_max_iters=1000000000"  # the link's page opens with its query string
    await a.goto("train")
    results.append(await attack(a, "link /train?train_n_layer=128&train_max_iters=1e9",
                                lambda: _notes(a, "The link's")))
    for name, data in hostile_files().items():
        results.append(await attack(a, f"upload {name}.safetensors ({len(data) / 1024:,.0f} KB)",
                                    lambda n=name, d=data: a.upload("model_upload", f"{n}.safetensors", d)))
    results.append(await attack(a, "giant training (8 x 256, block 256, batch 64, 5,000 steps)",
                                lambda: _giant(a)))
    results.append(await attack(a, "queue hog: the ladder, then the ladder again with two more seeds",
                                lambda: _hog(a)))
    results.append(await attack(a, "pause a training and walk away", lambda: _pause(a, rounds_s)))
    await a.close()
    return results


async def _notes(a: Attacker, prefix: str) -> str:
    return " | ".join(t for t in a.texts if t.startswith(prefix)) or "(no note)"


async def _giant(a: Attacker) -> str:
    for key, value in (("train_n_layer", 8), ("train_n_embd", 256), ("train_n_head", 16), ("train_block_size", 256),
                       ("train_batch_size", 64), ("train_max_iters", 5000)):
        await a.change(key, value)
    n = len(a.texts)
    await a.change("train_start")
    return a.latest_alert(n)


async def _hog(a: Attacker) -> str:
    for key, value in (("train_n_layer", 1), ("train_n_embd", 32), ("train_block_size", 32), ("train_batch_size", 8),
                       ("train_max_iters", 5000)):
        await a.change(key, value)
    await a.change("train_ladder")
    n = len(a.texts)
    await a.change("train_seeds") if a.find("train_seeds") else None
    queued = [t for t in a.texts if "queued" in t][-1:]
    await a.change("train_stop")
    return " | ".join(queued + list(a.texts)[n:][-1:])


async def _pause(a: Attacker, wait_s: float) -> str:
    await a.change("train_max_iters", 5000)
    await a.change("train_start")
    deadline = time.monotonic() + wait_s
    while not a.find("train_pause") or not any("running" in t for t in list(a.texts)[-3:]):
        if time.monotonic() > deadline:
            return "(never started: the queue was full for the whole run)"
        await asyncio.sleep(1)
        await a.rerun()  # the live view's polling
    await a.change("train_pause")
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        await asyncio.sleep(2)
        await a.rerun()  # the tab stays open (its heartbeat): the server, not the student, ends the pause
        stopped = [t for t in a.texts if "Paused for more than" in t]
        if stopped:
            return stopped[-1]
    return "(still paused at the end of the run)"


# --- the run ------------------------------------------------------------------------------------------

def p95(role: str, start: float, end: float) -> float | None:
    values = [s for t, r, s in TIMELINE if r == role and start <= t <= end]
    return loadtest.percentile(values, 95) if values else None


async def amain(args) -> dict:
    env = {"GPTVIZ_MAX_PAUSE_MINUTES": str(args.pause_minutes)}
    server = await asyncio.to_thread(Server, ROOT, env, None, [])
    print(f"server {server.url} (pid {server.pid}, log {server.log_path})", flush=True)
    budget = memory.budget_bytes()
    try:
        ws_url = server.url.replace("http", "ws", 1) + "/_stcore/stream"
        await loadtest.warm_up(ws_url, ["next_token", "attention", "train"], args.timeout)
        sampler = loadtest.MemorySampler(server.pid)
        sampler.start()
        workers_before = set(memory.children(server.pid))
        t0, c0, m0 = time.monotonic(), sum(os.times()[:2]), loadtest.machine_cpu_seconds()
        sessions, attacked = await asyncio.gather(loadtest.run_sessions(args, ws_url),
                                                  _after(args.ramp + 5, attacks(server.url, args.timeout,
                                                                                args.pause_minutes * 60 + 20)))
        wall = time.monotonic() - t0
        sampler.stop()
        alive = server.proc.poll() is None
        workers_after = set(memory.children(server.pid))
        result = loadtest.report(args, sessions, sampler, server.log_errors(), wall, sum(os.times()[:2]) - c0,
                                 loadtest.machine_cpu_seconds() - m0)
        log = server.log_path.read_text(errors="replace")  # before the shutdown ends the workers
    finally:
        server.stop()
    result["abuse"] = {
        "attacks": [{**r, "class_inspect_p95": p95("inspect", r["start"], r["end"])} for r in attacked],
        "memory_budget_mb": budget / 2**20, "server_peak_rss_mb": result["server_rss_peak_mb"],
        "server_alive": alive, "workers_replaced": len(workers_before - workers_after),
        "worker_deaths_logged": len(re.findall(r"gptviz worker \d+ \(pid \d+\) died", log)),
    }
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    return result


async def _after(delay: float, coro):
    await asyncio.sleep(delay)
    return await coro


def print_table(result: dict):
    a = result["abuse"]
    print("\n| attack | what the student sees | class inspect p95 during it |\n|---|---|---|")
    for r in a["attacks"]:
        seen = r["seen"].replace("|", "/").replace("\n", " ")
        p = f"{r['class_inspect_p95']:.2f} s" if r["class_inspect_p95"] is not None else "-"
        print(f"| {r['attack']} | {seen}{' (EXCEPTION: ' + '; '.join(r['exceptions']) + ')' if r['exceptions'] else ''} | {p} |")
    inspect = result["roles"].get("inspect", {})
    t = result["trainings"]
    print(f"\nclass: inspect p95 {inspect.get('p95', float('nan')):.2f} s (goal <= {loadtest.GOAL_P95_S} s); "
          f"trainings {t['finished']} finished of {t['started']} started; server peak RSS "
          f"{a['server_peak_rss_mb']:,.0f} MB of a {a['memory_budget_mb']:,.0f} MB budget; server alive: "
          f"{a['server_alive']}; worker processes that died and were replaced: {a['worker_deaths_logged']}")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = {"--pause-minutes": 0.5}
    for flag in list(extra):
        if flag in argv:
            i = argv.index(flag)
            extra[flag] = float(argv[i + 1])
            del argv[i:i + 2]
    if "--seconds" not in argv:
        argv += ["--seconds", "90"]
    args = loadtest.parse_args(argv, "python -m tools.abuse")
    args.pause_minutes = extra["--pause-minutes"]
    result = asyncio.run(amain(args))
    ok = result["abuse"]["server_alive"] and not any(r["exceptions"] for r in result["abuse"]["attacks"])
    return 0 if ok else 1


if __name__ == "__main__":
    torch.set_num_threads(1)
    raise SystemExit(main())
