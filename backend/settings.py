"""The one configuration: every setting with its default and a line of documentation.

A setting comes from its environment variable, else from the TOML file named by TRANSFERLAB_CONFIG
(default `transferlab.toml` in the project folder, when it exists), else from its default. Torch-free:
the dashboard, the CLI and the workers all read it. `python -m backend.settings` prints them all;
`python -m backend.settings streamlit-flags` the dashboard's server flags (`make run` uses them);
`python -m backend.settings hash-password` the hash of a lab password.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sys
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Setting:
    key: str  # the TOML key; the environment variable is TRANSFERLAB_<KEY>
    default: Callable[[], Any]  # computed late: one setting's default may follow another
    doc: str
    parse: Callable[[str], Any] = str

    @property
    def env(self) -> str:
        return f"TRANSFERLAB_{self.key.upper()}"


def _paths(raw: str | list) -> list[Path]:
    """A path list: os.pathsep-separated text, or a TOML list."""
    items = raw if isinstance(raw, list) else [p for p in str(raw).split(os.pathsep) if p.strip()]
    return [Path(p).expanduser() for p in items]


def _switch(raw: str | bool) -> bool:
    return raw if isinstance(raw, bool) else str(raw).strip().lower() not in ("0", "false", "no", "off", "")


SETTINGS = {s.key: s for s in (
    Setting("var", lambda: PROJECT_ROOT / "var", "everything the app writes: database, artifacts, caches", Path),
    Setting("database_url", lambda: f"sqlite:///{get('var') / 'transferlab.db'}",
            "the store; postgresql+psycopg://user@host/db to scale out to many workers"),
    Setting("artifacts", lambda: get("var") / "artifacts",
            "checkpoints and epoch states; one folder shared by every worker of a database", Path),
    Setting("data_cache", lambda: get("var") / "cache" / "data", "decoded data sets (safetensors)", Path),
    Setting("data_roots", lambda: [get("var"), PROJECT_ROOT.parent / "shared" / "datasets", *model_caches()],
            "folders users may read data and weights files from (a path list): a typed folder, torchvision root "
            "or weights file outside them is refused, after symlinks. Default: var, ../shared/datasets, and "
            "torch's and Hugging Face's local model caches", _paths),
    Setting("allow_downloads", lambda: False, "let workers download pretrained weights (torchvision's "
            "model.pretrained) when they are not in the local cache; off: only files already here are read",
            _switch),
    Setting("device", lambda: "auto", "the workers' device: auto, cpu, cuda or cuda:N"),
    Setting("embedded_worker", lambda: True, "start one worker with each dashboard server (off in a lab that "
            "runs its own)", _switch),
    Setting("listen_address", lambda: "127.0.0.1", "the address the dashboard listens on; 0.0.0.0 exposes it "
            "to the network"),
    Setting("port", lambda: 8501, "the dashboard's port", int),
    Setting("access_mode", lambda: "open", "open: anyone who reaches the dashboard may queue and edit (a laptop); "
            "lab: a login is needed before anything changes state"),
    Setting("password_hash", lambda: "", "the lab password's scrypt hash (python -m backend.settings hash-password); "
            "with access_mode lab"),
    Setting("worker_memory_gb", lambda: None, "memory one worker may use (GiB; its GPU's in a lab); a study whose "
            "estimated training memory exceeds it is refused at submit. Default: this machine's memory", float),
)}


def model_caches() -> list[Path]:
    """Where torch (hub checkpoints: torchvision's weights) and Hugging Face (timm's) keep downloaded weights."""
    torch_home = Path(os.environ.get("TORCH_HOME", Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "torch"))
    hf_home = Path(os.environ.get("HF_HOME", Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "huggingface"))
    return [(torch_home / "hub" / "checkpoints").expanduser(), (hf_home / "hub").expanduser()]


@lru_cache(maxsize=4)
def _file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"the settings file {path!r} is unreadable: {exc}") from None


def config_file() -> Path:
    return Path(os.environ.get("TRANSFERLAB_CONFIG", PROJECT_ROOT / "transferlab.toml"))


def get(key: str) -> Any:
    """A setting's value: its environment variable, the settings file, or its default."""
    setting = SETTINGS[key]
    if setting.env in os.environ:
        raw = os.environ[setting.env]
    else:
        from_file = _file(str(config_file()))
        if key not in from_file:
            return setting.default()
        raw = from_file[key]
    try:
        return setting.parse(raw)
    except (TypeError, ValueError):
        raise ValueError(f"setting {key} ({setting.env}): cannot read {raw!r}") from None


def var_dir() -> Path:
    return get("var")


def data_cache_dir() -> Path:
    return get("data_cache")


def artifacts_dir() -> Path:
    return get("artifacts")


def data_roots() -> list[Path]:
    return [p.resolve() for p in get("data_roots")]


def hash_password(password: str, salt: bytes | None = None) -> str:
    """`scrypt$<salt>$<digest>` (hex): what the password_hash setting holds."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, salt, _ = stored.split("$")
        return scheme == "scrypt" and hmac.compare_digest(hash_password(password, bytes.fromhex(salt)), stored)
    except ValueError:  # not a hash this module wrote
        return False


def main(argv: list[str]) -> None:
    if argv[1:] == ["streamlit-flags"]:
        print(f"--server.address {get('listen_address')} --server.port {get('port')}")
        return
    if argv[1:] == ["hash-password"]:
        from getpass import getpass

        print(hash_password(getpass("lab password: ")))
        return
    for key, setting in SETTINGS.items():
        print(f"{setting.env} = {get(key)!s}    # {setting.doc}")


if __name__ == "__main__":
    main(sys.argv)
