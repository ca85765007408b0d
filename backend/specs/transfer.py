"""Transfer specs: a target network whose first n units start from a source network, or at random."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from backend.specs.base import Spec, SpecError
from backend.specs.models import ConvNetSpec, ModelSpec, unit_names
from backend.specs.training import TrainJobSpec, TrainSpec
from backend.specs.data import DataSpec
from backend.specs.pretrained import NetworkFile

# Yosinski et al.'s names: A and B are the two tasks, n the units copied, "+" fine-tuned.
TREATMENTS = ("AnB", "BnB", "AnB+", "BnB+", "random")


class TransferSpec(Spec):
    n: int = Field(ge=0, description="transfer units copied from the source (0 = train from scratch)")
    init: Literal["source", "random"] = Field(
        "source", description="source: copy the first n units; random: leave them at their random init "
        "(Yosinski's random-frozen control)")
    fine_tune: bool = Field(False, description="False: copied units frozen (AnB); True: all trained (AnB+)")
    cache_prefix: bool = Field(True, description="compute frozen units' outputs once (no augmentation)")


class TransferJobSpec(Spec):
    """Train a network on `data` whose first `transfer.n` units come from `source` (a base network).
    The units above n, the classifier included, are always re-initialised."""

    data: DataSpec
    model: ModelSpec = ConvNetSpec()
    train: TrainSpec = TrainSpec()
    transfer: TransferSpec
    source: TrainJobSpec | NetworkFile | None = Field(
        None, description="the base network the units come from: a training job, or an imported weights file")

    @model_validator(mode="after")
    def _consistent(self) -> TransferJobSpec:
        t, names = self.transfer, unit_names(self.model)
        if t.n > len(names) - 1:
            raise SpecError(f"n={t.n}, but {self.model.arch} has {len(names) - 1} transferable units "
                            f"({', '.join(names[:-1])}): n runs 0..{len(names) - 1}", field="transfer.n")
        if t.init == "random" and t.fine_tune:
            raise SpecError("the random control keeps its units frozen", field="transfer.fine_tune")
        if self.copies_units and self.source is None:
            raise SpecError(f"copying {t.n} units needs a source network", field="source")
        if self.source is not None and self.source.model != self.model:
            raise SpecError("the source network has another architecture than the target",
                            field="source.model")
        return self

    @property
    def copies_units(self) -> bool:
        """Whether the first n units come from the source network (not random, and n > 0)."""
        return self.transfer.init == "source" and self.transfer.n > 0

    @property
    def treatment(self) -> str:
        """AnB, BnB (frozen), AnB+, BnB+ (fine-tuned), random, or scratch (n = 0)."""
        t = self.transfer
        if t.n == 0:
            return "scratch"
        if t.init == "random":
            return "random"
        name = "BnB" if self.source is not None and self.source.data == self.data else "AnB"
        return name + ("+" if t.fine_tune else "")
