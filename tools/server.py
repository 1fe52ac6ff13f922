"""Start `streamlit run app.py` on a free local port and stop it again (load test and browser tests)."""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]




class Server:
    """`streamlit run app.py` on 127.0.0.1 in its own process group, stopped with SIGTERM then SIGKILL."""

    def __init__(self, app_dir: Path = ROOT, env: dict | None = None, log_path: Path | None = None,
                 extra_args: list[str] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="gptviz-loadtest-", suffix=".log")[1])
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address=127.0.0.1",
                 f"--server.port={self.port}", "--server.headless=true", "--browser.gatherUsageStats=false",
                 *extra_args],
                cwd=app_dir, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                start_new_session=True)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2).read() == b"ok":
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not start; see {self.log_path}")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def log_errors(self) -> list[str]:
        """Tracebacks the server printed (errors outside any page's output)."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [ln for ln in lines if re.match(r"^\S*(Error|Exception)\b|^Traceback", ln)]
