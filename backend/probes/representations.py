"""A network's unit representations on a probe set, computed once and reused by every CKA comparison
the network takes part in: a study's CKA phase then costs one forward pass per network plus the Gram
algebra, instead of two forward passes per comparison (torch-cka's way).

What is kept is each unit reduced for its estimator (backend.probes.hsic.UnitRep: for the exact
one the centred features, or the centred Gram when it is smaller; for the minibatch one each batch's
U-centred Gram), the same tensors a fresh comparison would compute, so a cached comparison equals a
fresh one bit for bit. The last few networks stay in memory;
given a folder, each network's representations are also a safetensors file with a JSON sidecar
holding the file's sha256, so other workers and later jobs reuse them. A file whose bytes no longer
hash to its sidecar's digest, or that cannot be read, is refused, logged, recomputed and rewritten.
Nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from backend.checkpoints import sha256_of
from backend.probes.hsic import UnitRep, UnitReps
from backend.recent import LeastRecentlyUsed

FORMAT = "transferlab.representations/1"
log = logging.getLogger("transferlab.representations")

Representations = tuple[list[str], UnitReps]  # unit names, each unit's representation


def representation_key(network: str, images: dict, settings: dict, weights: str = "", data: str = "") -> str:
    """What identifies a network's representations: the network (its job's spec hash, and the digest
    of its weights, so a network run again with other weights is not confused with the old one), the
    probe images (a ProbeImages dump, and `data`, the task's data fingerprint: a folder whose files
    changed under the same spec draws other images) and the settings that shape them (kernel, pool,
    width, batch, estimator)."""
    shaping = {k: settings[k] for k in ("kernel", "pool", "rbf_width", "batch_size")}
    shaping["estimator"] = settings.get("estimator", "full")
    text = json.dumps({"network": network, "weights": weights, "images": images, "data": data, **shaping},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class RepresentationCache:
    """Representations by key: in memory (the `capacity` most recent within `memory_bytes`), and on
    disk under `folder`."""

    def __init__(self, folder: str | Path | None = None, capacity: int = 128, disk_bytes: int = 2 << 30,
                 memory_bytes: int = 1 << 30):
        self.folder = Path(folder) if folder is not None else None
        self.disk_bytes = disk_bytes  # past this, the least recently used files go (a cache, not a record)
        # The most recent networks' representations. A study's comparisons pair each network with several
        # others, not in a row: a 3-seed yosinski-digits study (81 networks, 1.5 MB each) recomputed 3 of
        # them with room for 8.
        self.memory = LeastRecentlyUsed(capacity)
        self.memory_bytes = memory_bytes
        self.sizes: dict[str, int] = {}  # bytes of each network in memory
        self.computed = self.reused = 0

    def get(self, key: str, compute: Callable[[], Representations], device: torch.device) -> Representations:
        found = self.memory.get(key)
        if found is None and self.folder is not None:
            found = self._read(key, device)
        if found is None:
            found = compute()
            self.computed += 1
            if self.folder is not None:
                self._write(key, found)
        else:
            self.reused += 1
            if self.folder is not None and self.path(key).exists():
                os.utime(self.path(key))  # recently used: pruned last
        self.memory.put(key, found)
        if key not in self.sizes:  # new in memory: keep within memory_bytes
            self.sizes = {k: self.sizes.get(k) or _nbytes(v) for k, v in self.memory.items.items()}
            while len(self.sizes) > 1 and sum(self.sizes.values()) > self.memory_bytes:
                del self.sizes[self.memory.items.popitem(last=False)[0]]
        return found

    def path(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / key[:2] / f"{key}.safetensors"

    def _read(self, key: str, device: torch.device) -> Representations | None:
        path = self.path(key)
        sidecar = path.with_suffix(".json")
        if not path.exists():
            return None
        try:
            meta = json.loads(sidecar.read_text())
            if meta.get("format") != FORMAT or meta.get("key") != key:
                raise ValueError(f"its sidecar {sidecar.name} belongs to another file")
            if (found := sha256_of(path)) != meta["sha256"]:
                raise ValueError(f"its sha256 is {found[:12]}..., the sidecar's {meta['sha256'][:12]}...")
            tensors = load_file(str(path), device=str(device))
        except (OSError, ValueError, KeyError, SafetensorError) as exc:
            log.warning("cached representations %s refused (%s): recomputing them", path, exc)
            return None
        reps = UnitReps([UnitRep(tensors.get(f"{i}.features"), tensors.get(f"{i}.gram"), norm)
                         for i, norm in enumerate(meta["norms"])])
        return meta["units"], reps

    def _write(self, key: str, value: Representations) -> None:
        """The file and then its sidecar, each atomically (temp file + rename)."""
        units, reps = value
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # copies: a unit's Gram is a view of its network's rows, and safetensors refuses shared memory
        tensors = {f"{i}.{kind}": t.detach().cpu().clone() for i, rep in enumerate(reps)
                   for kind, t in (("features", rep.features), ("gram", rep.gram)) if t is not None}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
        os.replace(tmp, path)
        # norms as JSON floats: repr round-trips a float exactly
        meta = {"format": FORMAT, "key": key, "sha256": sha256_of(path), "units": units,
                "norms": [rep.norm for rep in reps]}
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.json.tmp")
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, path.with_suffix(".json"))
        self._prune()

    def _prune(self) -> None:
        """Delete the least recently used files until the folder holds at most `disk_bytes`."""
        files = sorted(((f.stat().st_mtime, f) for f in self.folder.rglob("*.safetensors")), reverse=True)
        total = 0
        for _, f in files:
            total += f.stat().st_size
            if total > self.disk_bytes:
                f.unlink(missing_ok=True)
                f.with_suffix(".json").unlink(missing_ok=True)


def _nbytes(value: Representations) -> int:
    return sum(t.numel() * t.element_size() for r in value[1] for t in (r.features, r.gram) if t is not None)
