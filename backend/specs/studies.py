"""Study specs: a protocol from the literature over a grid, expanded into jobs at submit time."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, model_validator

from backend.specs.base import Spec, SpecError
from backend.specs.data import DataSpec
from backend.specs.models import ConvNetSpec, ModelSpec, unit_names
from backend.specs.probes import StudyProbes
from backend.specs.training import TrainSpec
from backend.specs.transfer import TREATMENTS


class YosinskiSpec(Spec):
    """Yosinski et al. 2014: per seed, split the classes into random halves A and B, train baseA and
    baseB from scratch, then train on B with the first n units from baseA or baseB, frozen or
    fine-tuned, or random and frozen, for every n."""

    study: Literal["yosinski"] = "yosinski"
    data: DataSpec = Field(description="the whole task; each seed splits its classes into halves A, B")
    model: ModelSpec = ConvNetSpec()
    train: TrainSpec = TrainSpec()
    seeds: list[int] = Field([0], min_length=1, description="one class split and one training seed each")
    n: list[int] | None = Field(None, description="units transferred; default 1..L (all but the classifier)")
    treatments: list[Literal[TREATMENTS]] = Field(list(TREATMENTS), min_length=1)  # type: ignore[valid-type]
    probes: StudyProbes = Field(StudyProbes(), description="sharpness of every network; CKA of each transfer "
                                "against baseB and against its source network")

    @model_validator(mode="after")
    def _valid_grid(self) -> YosinskiSpec:
        if self.data.classes.half is not None:
            raise SpecError("the study chooses the halves itself; leave it unset", field="data.classes.half")
        if len(set(self.seeds)) != len(self.seeds):
            raise SpecError("seeds must be distinct", field="seeds")
        top = len(unit_names(self.model)) - 1
        bad = [n for n in self.n or [] if not 1 <= n <= top]
        if bad:
            raise SpecError(f"{bad} out of range: {self.model.arch} has units 1..{top} to transfer", field="n")
        return self

    @property
    def n_values(self) -> list[int]:
        return sorted(set(self.n)) if self.n else list(range(1, len(unit_names(self.model))))


@dataclass(frozen=True)
class Preset:
    """A ready-made study: its spec as a plain dict (so the CLI and the UI can show and edit it), and
    the overrides of its quick size, which finishes in a few minutes on a laptop CPU."""

    study: str  # the study kind, a key of backend.studies.STUDY_KINDS
    asks: str  # one line: the question it answers
    spec: dict[str, Any]
    quick: dict[str, Any] = field(default_factory=dict)  # dotted field paths -> values

    def spec_dict(self, quick: bool = False) -> dict[str, Any]:
        """A fresh copy of the spec to edit, at its quick size when asked."""
        from backend.specs.base import set_field

        spec = json.loads(json.dumps(self.spec))
        for path, value in (self.quick.items() if quick else ()):
            set_field(spec, path, value)
        return spec


_DIGITS_NET = {"arch": "convnet", "channels": [32, 64, 64], "hidden": [64, 64]}

PRESETS: dict[str, Preset] = {
    "yosinski-digits": Preset(
        "yosinski", "Which layers of a digits net transfer between two halves of the classes? (offline)",
        {"study": "yosinski", "data": {"source": {"kind": "digits"}}, "model": _DIGITS_NET,
         "train": {"epochs": 12, "batch_size": 64, "lr": 0.05}, "seeds": [0, 1, 2],
         # Sharpness off here: it took the sweep from 15 s to 600 s on 2 CPU cores (3.5 s per network
         # for 3 scopes); CKA on: 108 comparisons in about 1 s. Tick it on the New study page.
         "probes": {"sharpness": None}},
        quick={"seeds": [0]}),
    "yosinski-mnist": Preset(
        "yosinski", "The same layer sweep on MNIST halves, 500 images per class (needs MNIST on disk)",
        {"study": "yosinski",
         "data": {"source": {"kind": "torchvision", "name": "MNIST", "root": "../shared/datasets"}, "per_class": 500},
         "model": {"arch": "convnet", "channels": [32, 64, 64], "hidden": [128, 64]},
         "train": {"epochs": 6, "batch_size": 128, "lr": 0.05}, "seeds": [0, 1]},
        quick={"seeds": [0], "data.per_class": 100, "train.epochs": 3, "probes.sharpness.images": 256,
               "probes.sharpness.trace_samples": 30, "probes.sharpness.density_iterations": 20}),
}
