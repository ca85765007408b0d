"""Model selection: which of K candidate sources should a researcher fine-tune on their target?

You et al. 2021 (LogME) and Nguyen et al. 2020 (LEEP): score every candidate on the target without
training, fine-tune every candidate, and measure how well the cheap scores rank the candidates by
their fine-tuned accuracy (weighted Kendall's tau, Spearman, whether the best-scored is the best).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from backend.specs.base import Spec, SpecError, StudySeed, Whole
from backend.specs.cross import InputFormat, TargetTask
from backend.specs.data import DataSpec
from backend.specs.models import ConvNetSpec, ModelSpec, unit_names
from backend.specs.pretrained import check_input
from backend.specs.transfer import Pretrained
from backend.specs.probes import SPEC_HASH, ScoreSettings
from backend.specs.training import TrainJobSpec, TrainSpec

RANK_SCORES = ("logme", "leep", "nce", "h_score")  # what a scores job measures, each ranked against accuracy


class Candidate(Spec):
    """One source: pretrained in this lab on a task, or a pretrained network (a file, a lab network)."""

    name: str = Field(min_length=1, max_length=60, description="how figures and tables name the candidate")
    source: DataSpec | None = Field(None, description="pretrain on this task here (the study's model and pretrain)")
    pretrained: Pretrained | None = Field(None, description="or a network pretrained elsewhere")  # type: ignore[valid-type]
    model: ModelSpec | None = Field(None, description="the architecture pretrained on `source`; None = the "  # type: ignore[valid-type]
                                    "study's model")

    @model_validator(mode="after")
    def _one_source(self) -> Candidate:
        if (self.source is None) == (self.pretrained is None):
            raise SpecError("a candidate is a source task to pretrain on or a pretrained network: give one",
                            field="source")
        if self.pretrained is not None and self.model is not None and self.model != self.pretrained.model:
            raise SpecError("a pretrained candidate's architecture is its network's: leave model out", field="model")
        return self


class ModelSelectionSpec(Spec):
    """Score every candidate on the target (LogME, LEEP, NCE, H-score: no training), fine-tune every
    candidate on it (AnB+, its first n units copied, all trained) with each seed, and rank."""

    study: Literal["model_selection"] = "model_selection"
    candidates: list[Candidate] = Field(min_length=2, description="the sources to choose among")
    target: DataSpec = Field(description="the researcher's task")
    input: InputFormat = Field(InputFormat(), description="a common size and channel count for every task "
                               "(a pretrained network brings the target to its own where this sets none)")
    model: ModelSpec = Field(ConvNetSpec(), description="the architecture of candidates pretrained here")  # type: ignore[valid-type]
    pretrain: TrainSpec = Field(TrainSpec(), description="how candidates with a source task are pretrained")
    train: TrainSpec = Field(TrainSpec(), description="fine-tuning on the target (and the from-scratch baseline)")
    amounts: list[int | None] = Field([None], min_length=1, description="training images per class on the "
                                      "target; None = all")
    seeds: list[StudySeed] = Field([0, 1, 2], min_length=1, description="fine-tuning seeds per candidate")
    n: Whole | None = Field(None, ge=1, description="units copied into the fine-tuned network; None = all but "
                          "the classifier")
    scores: ScoreSettings = Field(ScoreSettings(images=500), description="the target images the scores read")
    baseline: bool = Field(True, description="also train the target from scratch (baseB): does any candidate help?")

    @model_validator(mode="after")
    def _valid(self) -> ModelSelectionSpec:
        if len({c.name for c in self.candidates}) != len(self.candidates):
            raise SpecError("candidate names must be distinct", field="candidates")
        if len(set(self.seeds)) != len(self.seeds):
            raise SpecError("seeds must be distinct", field="seeds")
        if len(set(self.amounts)) != len(self.amounts) or any(a is not None and a < 1 for a in self.amounts):
            raise SpecError("data amounts are distinct, at least 1 image per class (None = all)", field="amounts")
        for i, c in enumerate(self.candidates):
            top = len(unit_names(self.model_of(c))) - 1
            if self.n is not None and self.n > top:
                raise SpecError(f"candidate {c.name!r} is a {self.model_of(c).arch} with units 1..{top} to "
                                "transfer", field="n")
            try:
                if c.pretrained is not None:
                    check_input(c.pretrained, [("the target", self.input_format(c).apply(self.target))])
                else:  # the source task and the target in one format, or an error naming both
                    self.input.check(c.source, [TargetTask(name="target", data=self.target)])
            except SpecError as exc:
                raise SpecError(str(exc).split(": ", 1)[1], field=f"candidates.{i}.{exc.field}") from None
        return self

    def model_of(self, candidate: Candidate) -> ModelSpec:  # type: ignore[valid-type]
        if candidate.pretrained is not None:
            return candidate.pretrained.model
        return candidate.model or self.model

    def input_format(self, candidate: Candidate) -> InputFormat:
        """The study's input format, as the candidate's pretrained network (if any) takes it."""
        return self.input.taken_by(candidate.pretrained)

    def source_job(self, candidate: Candidate) -> Spec:
        """The job that yields the candidate's network: its import, its lab run, or its pretraining here."""
        if candidate.pretrained is not None:
            return candidate.pretrained.job
        return TrainJobSpec(data=self.input.apply(candidate.source), model=self.model_of(candidate),
                            train=self.pretrain)

    def units(self, candidate: Candidate) -> int:
        return self.n or len(unit_names(self.model_of(candidate))) - 1


class RankedCandidate(Spec):
    """One candidate in a ranking: the job that scored it and the jobs that fine-tuned it."""

    name: str
    scores: str = Field(pattern=SPEC_HASH, description="spec hash of its scores job")
    fine_tuned: list[Annotated[str, Field(pattern=SPEC_HASH)]] = Field(
        min_length=1, description="spec hashes of its fine-tuning jobs, one per seed (the same seeds for each)")


class RankAgreementJobSpec(Spec):
    """How well each score ranks the candidates by fine-tuned accuracy, at one data amount."""

    amount: int | None = Field(description="training images per class on the target; None = all")
    candidates: list[RankedCandidate] = Field(min_length=2)

    @property
    def results(self) -> tuple[str, ...]:
        """The jobs whose results it reads."""
        return tuple(k for c in self.candidates for k in (c.scores, *c.fine_tuned))
