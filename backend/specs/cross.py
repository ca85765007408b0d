"""Cross-data-set transfer studies: one source task pretrained once per seed, many target tasks.

The axes a researcher compares transfer along (Chen et al. 2022; Neyshabur et al. 2020): targets of
growing domain gap (other data sets, the source under shifts of growing strength, synthetic gap
levels, class subsets), data amount on the target, units transferred, and, across studies, network
depth. In Yosinski's notation A is the source task and B a target: baseA is the pretrained network,
baseB the target trained from scratch (RI-T), AnB and AnB+ the pretrained network's first n units
frozen or fine-tuned on the target (P-T).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from backend.specs.base import Spec, SpecError, StudySeed, Whole, canonical_json, late_field
from backend.specs.data import DataSpec, check_block_sizes, native_size
from backend.specs.models import ConvNetSpec, ModelSpec, unit_names
from backend.specs.landscape import SmoothnessSettings
from backend.specs.pretrained import check_input
from backend.specs.transfer import Pretrained
from backend.specs.seeds import Precision
from backend.specs.probes import GapSettings, ScoreSettings, SharpnessSettings, SimilaritySettings
from backend.specs.training import TrainJobSpec, TrainSpec

# The pretrained network's first n units frozen (P-T frozen) or fine-tuned with the rest (P-T).
CROSS_TREATMENTS = ("AnB", "AnB+")


class TargetTask(Spec):
    """One target task: a name for figures and tables, its data, and optionally a nominal strength
    (a shift's std, a synthetic gap level) for the explorer's x axis."""

    name: str = Field(min_length=1, max_length=60, description="how figures and tables name the target")
    data: DataSpec
    strength: float | None = Field(None, description="nominal shift strength or gap level, for plots; None = none")


class InputFormat(Spec):
    """How every task is brought to the network's input: one size and channel count for all."""

    size: int | None = Field(None, ge=4, le=512, description="resize every task to size x size; None = as given")
    channels: Literal[1, 3] | None = Field(None, description="1 = grey, 3 = RGB for every task; None = as given")

    def taken_by(self, pretrained: Any) -> InputFormat:
        """This format, with a pretrained network's image size and channels where it sets none, so every
        task comes to the network as it was trained (itself for no network, or one that does not say)."""
        given = pretrained.input if pretrained is not None else None
        if given is None:
            return self
        return self.model_copy(update={"size": self.size or given.size, "channels": self.channels or given.channels})

    def apply(self, data: DataSpec) -> DataSpec:
        """A task brought to this format."""
        update = {k: v for k, v in self.model_dump().items() if v is not None}
        return data.model_copy(update=update) if update else data

    def check(self, source: DataSpec | None, targets: list[TargetTask]) -> None:
        """Every target in the source's format once brought to this one, or a SpecError naming both;
        and every task's block shuffles still tiling its images at this size."""
        tasks = [*([("source", source)] if source is not None else []),
                 *((f"targets.{i}.data", t.data) for i, t in enumerate(targets))]
        for where, task in tasks:
            task = self.apply(task)
            size = task.size or native_size(task.source)
            if size is not None:
                check_block_sizes(task.shifts, size, size, where=f"{where}.shifts")
        if source is None:
            return
        source = self.apply(source)
        for i, target in enumerate(targets):
            data = self.apply(target.data)
            for what in ("size", "channels"):
                a, b = getattr(source, what), getattr(data, what)
                if a is not None and b is not None and a != b:
                    raise SpecError(f"the source's {what} is {a} but target {target.name!r}'s is {b}: set "
                                    f"input.{what} to bring every task to one", field=f"targets.{i}.data.{what}")


class CrossProbes(Spec):
    """Which measurements a cross-data-set study attaches; None (False) turns one off."""

    gap: GapSettings | None = Field(GapSettings(), description="proxy A-distance and MMD source -> target; "
                                    "the target's diversity")
    chen_t: bool = Field(True, description="Chen et al.'s T per layer and overall, for every AnB+ network")
    scores: ScoreSettings | None = Field(ScoreSettings(), description="LogME, LEEP, NCE, H-score per target")
    sharpness: SharpnessSettings | None = Field(
        None, description="Hessian sharpness of every target network (RI-T and P-T) at the end of its training")
    similarity: SimilaritySettings | None = Field(
        None, description="CKA of each P-T network against the target's RI-T network and the pretrained one")
    smoothness: SmoothnessSettings | None = Field(
        None, description="the landscape along training of every target network (Liu et al.), by a replay of its run")
    treatments: list[str] | None = Field(None, description="sharpness, CKA and smoothness for these treatments "
                                         "only; None = all")


class SourceAndTargets(Spec):
    """What every study across data sets has: a source task pretrained once per seed (or a network
    pretrained elsewhere), target tasks, one input format for all of them, the network and how it trains."""

    source: DataSpec | None = Field(None, description="the source task A, pretrained once per seed; with "
                                    "`pretrained`, the data that network was trained on (for the domain gap), if any")
    pretrained: Pretrained | None = late_field(  # type: ignore[valid-type]
        None, "a pretrained network as baseA instead of pretraining on `source`: a weights file, or a network "
        "of this lab; every seed transfers from it")
    targets: list[TargetTask] = Field(min_length=1, description="the target tasks B")
    input: InputFormat = Field(InputFormat(), description="a common size and channel count for every task")
    model: ModelSpec = ConvNetSpec()
    train: TrainSpec = Field(TrainSpec(), description="pretraining and target training alike")
    seeds: list[StudySeed] = Field([0], min_length=1, description="one pretraining each")
    precision: Precision | None = late_field(None, "add seeds after these until an interval is this narrow")

    @model_validator(mode="before")
    @classmethod
    def _model_of_pretrained(cls, value: Any) -> Any:
        """A study from a pretrained network trains that network's architecture unless told otherwise."""
        if isinstance(value, dict) and isinstance(value.get("pretrained"), dict) and "model" not in value:
            p = value["pretrained"]
            model = p.get("model") if p.get("kind", "file") == "file" else (p.get("network") or {}).get("model")
            if model is not None:
                return {**value, "model": model}
        return value

    @model_validator(mode="after")
    def _valid_tasks(self) -> SourceAndTargets:
        if self.source is None and self.pretrained is None:
            raise SpecError("give the source task to pretrain on, or a pretrained network", field="source")
        if self.pretrained is not None:
            if self.pretrained.model != self.model:
                raise SpecError(f"the pretrained network is a {self.pretrained.model.arch} "
                                f"({canonical_json(self.pretrained.model)}) but the study's model is "
                                f"{canonical_json(self.model)}: leave model out to use the network's", field="model")
            if getattr(self, "source_epochs", None) or getattr(self, "depths", None):
                raise SpecError("a pretrained network has no pretraining epochs or depths to vary",
                                field="source_epochs" if getattr(self, "source_epochs", None) else "depths")
        if len({t.name for t in self.targets}) != len(self.targets):
            raise SpecError("target names must be distinct", field="targets")
        if len(set(self.seeds)) != len(self.seeds):
            raise SpecError("seeds must be distinct", field="seeds")
        if self.precision is not None:
            self.precision.check(getattr(self, "study"), self.seeds)
        self.input_format.check(self.source_data, self.targets)
        if self.pretrained is not None:
            fmt = self.input_format
            check_input(self.pretrained, [(f"target {t.name!r}", fmt.apply(t.data)) for t in self.targets])
        return self

    def pretraining(self, seed: int, model: ModelSpec | None = None,  # type: ignore[valid-type]
                    stop: int | None = None) -> Spec:
        """The job that yields baseA for `seed`: the pretrained network's (its import, or its lab run), the
        same for every seed; else a pretraining on the source, of `model` (the study's), to epoch `stop`."""
        if self.pretrained is not None:
            return self.pretrained.job
        return TrainJobSpec(data=self.input_format.apply(self.source), model=model or self.model,
                            train=self.train.model_copy(update={"seed": seed, "stop_after": stop}))

    @property
    def source_data(self) -> DataSpec | None:
        """The data baseA was trained on, when the lab has it: the source task, or a lab network's data."""
        if self.source is None and self.pretrained is not None:
            return self.pretrained.data
        return self.source

    @property
    def input_format(self) -> InputFormat:
        """The study's input format, as its pretrained network (if any) takes it."""
        return self.input.taken_by(self.pretrained)


class CrossDatasetSpec(SourceAndTargets):
    """Pretrain on `source` once per seed; on every target and data amount, train from scratch
    (baseB, RI-T) and from the pretrained network's first n units, frozen (AnB) or fine-tuned (AnB+)."""

    study: Literal["cross_dataset"] = "cross_dataset"
    amounts: list[int | None] = Field([None], min_length=1, description="training images per class on the "
                                      "target (data amount); None = all")
    class_fractions: list[float | None] = Field(
        [None], min_length=1, description="share of each target's classes kept, drawn per seed (diversity); None = all")
    depths: list[Whole] | None = Field(None, description="conv blocks of the network, the first k of model.channels "
                                     "(network depth); None = the model as given")
    source_epochs: list[Whole] | None = Field(
        None, description="fine-tune from the pretraining at these epochs of its schedule (pretraining stage, "
        "Neyshabur et al.; Liu et al.); None = the finished pretraining only")
    n: list[Whole] | None = Field(None, description="units transferred; default 1..L (all but the classifier)")
    treatments: list[Literal[CROSS_TREATMENTS]] = Field(  # type: ignore[valid-type]
        list(CROSS_TREATMENTS), min_length=1, description="AnB: P-T frozen; AnB+: P-T fine-tuned (baseB always)")
    probes: CrossProbes = CrossProbes()

    @model_validator(mode="after")
    def _valid_grid(self) -> CrossDatasetSpec:
        if len(set(self.amounts)) != len(self.amounts):
            raise SpecError("data amounts must be distinct", field="amounts")
        if any(a is not None and a < 1 for a in self.amounts):
            raise SpecError("a data amount is at least 1 image per class (None = all)", field="amounts")
        if len({f or 1.0 for f in self.class_fractions}) != len(self.class_fractions):  # None = 1.0: all
            raise SpecError("class shares must be distinct", field="class_fractions")
        if any(f is not None and not 0 < f <= 1 for f in self.class_fractions):
            raise SpecError("a class share is in (0, 1] (None = all classes)", field="class_fractions")
        if self.depths is not None:
            if not isinstance(self.model, ConvNetSpec):
                raise SpecError(f"network depth is a number of conv blocks: {self.model.arch} has none",
                                field="depths")
            blocks = len(self.model.channels)
            if not self.depths or len(set(self.depths)) != len(self.depths) or not all(
                    1 <= d <= blocks for d in self.depths):
                raise SpecError(f"depths are distinct numbers of conv blocks in 1..{blocks} (model.channels has "
                                f"{blocks})", field="depths")
        if self.source_epochs is not None and (not self.source_epochs or len(set(self.source_epochs)) != len(
                self.source_epochs) or not all(1 <= e <= self.train.epochs for e in self.source_epochs)):
            raise SpecError(f"source epochs are distinct epochs in 1..{self.train.epochs} (train.epochs)",
                            field="source_epochs")
        top = max(len(unit_names(m)) - 1 for m in self.models)
        bad = [n for n in self.n or [] if not 1 <= n <= top]
        if bad:
            raise SpecError(f"{bad} out of range: {self.model.arch} has units 1..{top} to transfer", field="n")
        return self

    @property
    def models(self) -> list[ModelSpec]:  # type: ignore[valid-type]
        """The network at every depth of the grid (the model itself when the grid has none)."""
        if self.depths is None:
            return [self.model]
        return [self.model.model_copy(update={"channels": self.model.channels[:d]}) for d in self.depths]

    def n_values(self, model: ModelSpec) -> list[int]:  # type: ignore[valid-type]
        """Units transferred into `model`: the grid's n that it has, or all but its classifier."""
        top = len(unit_names(model)) - 1
        return sorted(n for n in set(self.n) if n <= top) if self.n else list(range(1, top + 1))
