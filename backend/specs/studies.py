"""Study specs: a protocol from the literature over a grid, expanded into jobs at submit time."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from backend.specs.base import Spec, SpecError, StudySeed, Whole, late_field
from backend.specs.data import DataSpec
from backend.specs.models import ConvNetSpec, ModelSpec, unit_names
from backend.specs.probes import StudyProbes
from backend.specs.seeds import Precision
from backend.specs.training import TrainSpec
from backend.specs.transfer import TREATMENTS


class YosinskiSpec(Spec):
    """Yosinski et al. 2014: per seed, split the classes into random halves A and B, train baseA and
    baseB from scratch, then train on B with the first n units from baseA or baseB, frozen or
    fine-tuned, or random and frozen, for every n."""

    study: Literal["yosinski"] = "yosinski"
    data: DataSpec = Field(description="the whole task; each seed splits its classes into halves A, B")
    groups: list[list[Whole]] | None = Field(
        None, description="two class groups A and B in place of random halves (a dissimilar split, e.g. "
        "natural vs man-made); the same split for every seed")
    model: ModelSpec = ConvNetSpec()
    train: TrainSpec = TrainSpec()
    seeds: list[StudySeed] = Field([0], min_length=1, description="one class split and one training seed each")
    precision: Precision | None = late_field(None, "add seeds after these until an interval is this narrow")
    n: list[Whole] | None = Field(None, description="units transferred; default 1..L (all but the classifier)")
    treatments: list[Literal[TREATMENTS]] = Field(list(TREATMENTS), min_length=1)  # type: ignore[valid-type]
    probes: StudyProbes = Field(StudyProbes(), description="sharpness of every network; CKA of each transfer "
                                "against baseB and against its source network")

    @model_validator(mode="after")
    def _valid_grid(self) -> YosinskiSpec:
        if self.data.classes.half is not None:
            raise SpecError("the study chooses the halves itself; leave it unset", field="data.classes.half")
        if len(set(self.seeds)) != len(self.seeds):
            raise SpecError("seeds must be distinct", field="seeds")
        if self.precision is not None:
            self.precision.check(self.study, self.seeds)
        if self.groups is not None:
            if len(self.groups) != 2 or not all(self.groups):
                raise SpecError("two non-empty class groups: A (the source) and B (the target)", field="groups")
            a, b = map(set, self.groups)
            if a & b or len(a) != len(self.groups[0]) or len(b) != len(self.groups[1]):
                raise SpecError(f"the groups share or repeat classes {sorted(a & b)}", field="groups")
            if self.data.classes.include is not None:
                raise SpecError("the groups choose the classes; leave data.classes.include unset", field="groups")
        top = len(unit_names(self.model)) - 1
        bad = [n for n in self.n or [] if not 1 <= n <= top]
        if bad:
            raise SpecError(f"{bad} out of range: {self.model.arch} has units 1..{top} to transfer", field="n")
        return self

    @property
    def n_values(self) -> list[int]:
        return sorted(set(self.n)) if self.n else list(range(1, len(unit_names(self.model))))
