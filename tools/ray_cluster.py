"""A local Ray cluster of several nodes on one machine, for tests and the load test.

    with LocalRayCluster(nodes=2, cpus_per_node=1) as cluster:
        ... GPTVIZ_RAY_ADDRESS=cluster.address ...

Each node is a `ray start ... --block` process (the head first, then nodes that join it), on free ports
and in a private temporary folder; they are stopped by their process ids (SIGTERM, then SIGKILL).
A computer lab does the same with one `ray start` per computer (see the README).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools.server import free_port

RAY = str(Path(sys.executable).with_name("ray"))


class LocalRayCluster:
    def __init__(self, nodes: int = 2, cpus_per_node: int = 1, timeout: float = 120):
        self.nodes, self.cpus_per_node, self.timeout = nodes, cpus_per_node, timeout
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        # short: Ray puts Unix sockets in here, and their paths may not exceed ~100 characters
        self.temp_dir = tempfile.mkdtemp(prefix="gptviz-ray-", dir="/tmp")
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def __enter__(self) -> "LocalRayCluster":
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def _node(self, *args: str) -> subprocess.Popen:
        log = Path(self.temp_dir) / f"node{len(self.procs)}.log"
        self.logs.append(log)
        ports = [f"--dashboard-agent-listen-port={free_port()}",
                 f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}"]
        with log.open("w") as out:
            proc = subprocess.Popen([RAY, "start", *args, f"--num-cpus={self.cpus_per_node}", "--block",
                                     "--disable-usage-stats", "--node-ip-address=127.0.0.1", *ports],
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                    env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
        self.procs.append(proc)
        return proc

    def start_here(self) -> "LocalRayCluster":
        self.start()
        return self

    def start(self):
        self._node("--head", f"--port={self.port}", "--include-dashboard=false", f"--temp-dir={self.temp_dir}")
        self._wait_for(1)
        for _ in range(self.nodes - 1):
            self._node(f"--address={self.address}")
        self._wait_for(self.nodes)

    def _wait_for(self, nodes: int):
        """Until the first `nodes` nodes say they are up (each `ray start` prints it once its node runs)."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                break
            if all("Ray runtime started" in log.read_text(errors="replace") for log in self.logs[:nodes]):
                return
            time.sleep(0.3)
        logs = "".join(f"\n--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in self.logs)
        self.stop()
        raise RuntimeError(f"the local Ray cluster did not start {nodes} node(s):{logs}")

    def kill_node(self, index: int):
        """End one node at once (its process group): as when a lab computer is switched off."""
        os.killpg(self.procs[index].pid, signal.SIGKILL)
        self.procs[index].wait()

    def stop(self, grace_s: float = 5):
        """SIGTERM to every node's process group, SIGKILL to what is left after grace_s."""
        alive = [p for p in self.procs if p.poll() is None]
        for proc in alive:
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in alive:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]
