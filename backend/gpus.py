"""One worker per GPU: `python -m backend worker --gpus all` (or `--gpus 0,2`).

Each worker is its own process pinned to one GPU with CUDA_VISIBLE_DEVICES, so it sees that GPU as
cuda:0 and nothing else: its memory, its CUDA context and its failures stay its own. The parent waits
for them and passes SIGTERM and SIGINT on, so they stop together (each gives its running job back to
the queue); a child whose parent dies is sent SIGTERM by the kernel. With no GPU the caller runs one
worker on the CPU and says so.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from typing import Any

PR_SET_PDEATHSIG = 1  # prctl(2): the signal a child receives when its parent dies


def visible_gpus() -> list[str]:
    """The GPUs this process may use, named as a child's CUDA_VISIBLE_DEVICES must name them: the
    entries of our own CUDA_VISIBLE_DEVICES (set by Slurm or the container runtime), else 0..count-1."""
    import torch

    if not torch.cuda.is_available():
        return []
    count = torch.cuda.device_count()
    inherited = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return inherited[:count] if inherited else [str(i) for i in range(count)]


def choose_gpus(selection: str, visible: list[str]) -> list[str]:
    """`all`, or comma-separated positions among the visible GPUs ("0,2"). A ValueError names the bad entry."""
    if selection.strip() == "all":
        return list(visible)
    chosen: list[str] = []
    for part in selection.split(","):
        try:
            index = int(part)
        except ValueError:
            raise ValueError(f"--gpus: {part.strip()!r} is not a GPU number (give 'all' or a list such as 0,1)"
                             ) from None
        if not 0 <= index < len(visible):
            raise ValueError(f"--gpus: GPU {index} does not exist here: {len(visible)} visible "
                             f"({', '.join(map(str, range(len(visible)))) or 'none'})")
        if visible[index] in chosen:
            raise ValueError(f"--gpus: GPU {index} is listed twice")
        chosen.append(visible[index])
    return chosen


def worker_commands(gpus: list[str], options: list[str]) -> list[tuple[list[str], dict[str, str]]]:
    """One `python -m backend worker` per GPU, each seeing only its own GPU as cuda:0."""
    return [([sys.executable, "-m", "backend", "worker", "--device", "cuda:0", *options],
             {**os.environ, "CUDA_VISIBLE_DEVICES": gpu}) for gpu in gpus]


def supervise(commands: list[tuple[list[str], dict[str, str]]]) -> int:
    """Start every command, pass SIGTERM/SIGINT on to all of them and wait for all. Returns the first
    non-zero exit status, else 0. A child that stops early leaves the others serving."""
    processes = [subprocess.Popen(argv, env=env, preexec_fn=_die_with_parent) for argv, env in commands]

    def forward(signum: int, _frame: Any) -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        codes = [process.wait() for process in processes]
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return next((code for code in codes if code), 0)


def device_memory(device: Any) -> float:
    """Bytes a job may use on this worker's device: the worker_memory_gb setting when it is given (a lab's
    figure per GPU, as its help says), else a GPU's own memory, else the machine's."""
    from backend import settings
    from backend.specs.memory import memory_limit

    if getattr(device, "type", str(device)).startswith("cuda") and not settings.get("worker_memory_gb"):
        import torch

        return float(torch.cuda.get_device_properties(device).total_memory)
    return memory_limit()  # the setting, or this machine's memory


def describe_device(device: Any) -> str:
    """The device as the Workers view shows it: which physical GPU a pinned worker's cuda:0 is."""
    if getattr(device, "type", "") != "cuda":
        return str(device)
    import torch

    pinned = os.environ.get("CUDA_VISIBLE_DEVICES")
    name = torch.cuda.get_device_name(device)
    return f"{device} ({name}{f', GPU {pinned}' if pinned else ''})"


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
