"""One local worker process per dashboard server, so `make run` alone runs studies on a laptop.

Started once per server (not per session; it survives page reloads), restarted if it exits, and
stopped with the server. `TRANSFERLAB_EMBEDDED_WORKER=0` turns it off (a lab runs its own workers).
The worker is a separate process: the web tier never imports torch.
"""

from __future__ import annotations

import atexit
import subprocess
import sys
from pathlib import Path

import streamlit as st

from backend import settings


def enabled() -> bool:
    return settings.get("embedded_worker")


@st.cache_resource(show_spinner=False)
def _start() -> subprocess.Popen:
    log = settings.var_dir() / "worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "backend", "worker"], cwd=settings.PROJECT_ROOT,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    atexit.register(_stop, proc)
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()  # SIGTERM: the worker gives its job back to the queue
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def ensure_running() -> subprocess.Popen | None:
    """The embedded worker, started or restarted as needed; None when turned off."""
    if not enabled():
        return None
    proc = _start()
    if proc.poll() is not None:
        _start.clear()
        proc = _start()
    return proc


def log_path() -> Path:
    return settings.var_dir() / "worker.log"
