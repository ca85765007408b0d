"""Transfer specs: a target network whose first n units start from a source network, or at random; and a
network of this lab (trained from scratch or by transfer) as the source of a study."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, model_validator

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
    source: TrainJobSpec | TransferJobSpec | NetworkFile | None = Field(
        None, description="the base network the units come from: a training job, a transfer (a network fine-tuned "
        "here, as a source of its own), or an imported weights file")

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


class LabNetwork(Spec):
    """A network this lab trained, from scratch or by transfer: the spec of its job (found by job id or spec
    hash in the store)."""

    kind: Literal["lab"] = "lab"
    network: TrainJobSpec | TransferJobSpec = Field(description="the job that trained it; its finished run is reused")

    @model_validator(mode="before")
    @classmethod
    def _looked_up(cls, value: Any) -> Any:
        if isinstance(value, dict) and "job" in value and "network" not in value:
            raise SpecError(f"lab network {value['job']!r} is looked up in the store when the study is submitted "
                            "(python -m backend submit or sweep, or the New study page)", field="job")
        return value

    @property
    def job(self) -> TrainJobSpec | TransferJobSpec:
        return self.network

    @property
    def model(self) -> ModelSpec:  # type: ignore[valid-type]
        return self.network.model

    @property
    def data(self) -> DataSpec:
        return self.network.data

    @property
    def input(self) -> None:
        return None  # as its own data gives it


def _kind(value: Any) -> str:
    return value.get("kind", "file") if isinstance(value, dict) else getattr(value, "kind", "file")


# A pretrained source: a weights file (the default kind) or a network of this lab.
Pretrained = Annotated[Union[Annotated[NetworkFile, Tag("file")], Annotated[LabNetwork, Tag("lab")]],
                       Discriminator(_kind)]
