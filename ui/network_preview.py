"""The pretrained network's preview under the New study page's Data column (torch-free), before
anything is queued: its units (as backend.models names them), parameters per unit and in total, the
images it takes and the file's sha256.

A safetensors file named by the lab's units or a ResNet's is read at once, from its header. A torch
file (.pth), or another architecture's own tensor names, needs the engine: on request, the import job
a study from it runs first is queued (a worker runs it ahead of studies) and shown when done; the study
queued later reuses it, as it names the same pinned file.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from backend.specs import SpecError, parse, spec_hash
from backend.specs.pretrained import NetworkFile, NetworkInput, file_input, pin_network, sha256_of
from db.previews import NetworkSummary, request_import
from ui import access, store
from ui.network_file import (FileNetwork, WeightsForm, architecture_text, check_file, file_network, header,
                             readable)
from ui.preview import worker_preview


def pinned_network(form: WeightsForm, model: dict[str, Any]) -> NetworkFile:
    """The study's pretrained network as the form names it, pinned (inside the data roots, its sha256
    and input recorded) and checked against its file's header; a SpecError under the field otherwise."""
    if not form.path:
        raise SpecError("give the weights file: a path inside the data roots, or an upload", field="pretrained.path")
    try:
        network = parse(NetworkFile, form.spec(model))
    except SpecError as exc:  # named as the study names it: its model (the Network column), or pretrained.<field>
        field = exc.field or ""
        raise SpecError(str(exc).removeprefix(f"{field}: "),
                        field=field if field.startswith("model") else f"pretrained.{field}".rstrip(".")) from None
    network = pin_network(network)
    check_file(network)
    return network


def network_preview(form: WeightsForm, model: dict[str, Any]) -> None:
    """The preview of the network the form names; nothing while the form is invalid (the page shows
    that error under its field), but the file's own units whenever it is readable, so a mismatch
    between it and the study's network can be seen and fixed."""
    try:
        network = pinned_network(form, model)
    except SpecError as exc:
        if (exc.field or "").startswith(("model", "pretrained.input.channels")):
            _mismatch(form)
        return
    found = check_file(network)
    if found is not None:
        show(found.units, found.classes, network.input, network.sha256)
        return
    _imported(network)


def _mismatch(form: WeightsForm) -> None:
    """The file's units when its architecture is not the study's, and a button to take the file's."""
    path = readable(form.path)
    found = None if path is None else header(path)
    if found is None:  # not a file inside the roots, or a torch file: nothing to show without a worker
        return
    net = file_network(found)
    show(net.units, net.classes, file_input(path), sha256_of(path))
    if net.model is not None:
        st.button(f"Use the file's architecture ({architecture_text(net.model)})", key="new.use_file_model",
                  on_click=_take_architecture, args=(net,))


def _take_architecture(net: FileNetwork) -> None:
    """Sets the Network column's boxes to the file's architecture (runs before the page reruns)."""
    model = net.model or {}
    st.session_state["new.arch"] = model["arch"]
    for field in ("channels", "hidden"):
        if field in model:
            st.session_state[f"new.{field}"] = ",".join(map(str, model[field]))
    if "norm" in model:
        st.session_state["new.norm"] = model["norm"]
    for key in (small_input_key(False), small_input_key(True)):
        if "small_input" in model:
            st.session_state[key] = model["small_input"]
    if net.in_channels is not None:
        for imagenet in (False, True):
            st.session_state[f"new.input_channels.{imagenet}"] = net.in_channels


def small_input_key(imagenet: bool) -> str:
    """The Network column's small-input box: off by default for a network trained on ImageNet-sized images."""
    return f"new.small_input.{'imagenet' if imagenet else 'small'}"


def _imported(network: NetworkFile) -> None:
    """A network only the engine reads, from its import job: queued on request, shown when a worker ran it."""
    key = f"new.import_job.{spec_hash(network)}"
    if key not in st.session_state:
        st.caption("Its units are read on a worker: the engine maps its tensors onto them (a torch file, or a "
                   f"library's own tensor names). sha256 `{network.sha256}`")
    job = worker_preview(
        key, "Model preview",
        lambda: st.button("Preview model", key="new.preview_model", disabled=access.locked(),
                          help=access.hint("preview models") or "imports the file on a worker, ahead of any study; "
                          "the study reuses the import"),
        lambda: request_import(store.queue(), network))
    if job is not None:
        summary: NetworkSummary = job.network
        show(summary.units, summary.classes, NetworkInput(**summary.input), summary.file["sha256"],
             f"imported by job #{job.id}")


def show(units: dict[str, int], classes: int | None, given: NetworkInput | None, sha256: str | None,
         source: str = "from the file's header") -> None:
    total = sum(units.values())
    head = f"; a classifier of {classes} classes" if classes else ""
    takes = (f"; it takes {given.text()} images, mean {list(given.mean)}, std {list(given.std)}" if given is not None
             else "")
    st.caption(f"The network: {len(units)} units, {total:,} parameters{head}{takes} ({source})")
    st.dataframe(pd.DataFrame({"unit": list(units), "parameters": list(units.values())}), hide_index=True,
                 height=min(36 * (len(units) + 1), 260))
    if sha256:
        st.caption(f"sha256 `{sha256}`")
