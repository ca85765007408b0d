"""Study kinds: protocols from the literature, each a spec expanded into a plan of jobs (torch-free).

The submit path, the CLI and the pages go through `STUDY_KINDS`; adding a study is its module
(spec, `expand`, `axes`) and one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from backend.specs import (
    CROSS_TREATMENTS, TREATMENTS, BasinsSpec, CrossDatasetSpec, Spec, SpecError, YosinskiSpec, parse,
)
from backend.specs.probes import SHARPNESS_LADDER
from backend.specs.selection import ModelSelectionSpec
from backend.studies import basins, cross, selection, yosinski
from backend.studies.plan import SHARPNESS_BUDGET, PlannedJob, ProbeCost, sharpness_cost


@dataclass(frozen=True)
class GridField:
    """One field of a study's grid as the New study page edits it."""

    path: str  # dotted path in the study spec
    label: str
    choices: tuple[str, ...] = ()  # a multiselect when given, else comma-separated numbers
    number: type = int  # what each comma-separated value is
    all_is_none: bool = False  # "all" stands for None (every image, every class)
    empty: Any = None  # the value of an empty box

    def text(self, values: list | None) -> str:
        """The field's values as the page shows them."""
        return ",".join("all" if v is None else str(v) for v in values or [])

    def parse(self, text: str) -> list | None:
        """Comma-separated values -> a list (None when empty); a bad value is a SpecError naming the field."""
        values = []
        for token in (t.strip() for t in text.split(",") if t.strip()):
            if self.all_is_none and token.lower() == "all":
                values.append(None)
                continue
            try:
                values.append(self.number(token))
            except ValueError:
                kind = "whole numbers" if self.number is int else "numbers"
                raise SpecError(f"expected comma-separated {kind}{' or all' if self.all_is_none else ''}, got "
                                f"{token!r}", field=self.path) from None
        return values or self.empty


@dataclass(frozen=True)
class StudyKind:
    spec: type[Spec]
    expand: Callable[[Any], list[PlannedJob]]
    labels: tuple[str, ...]  # the labels its jobs carry, the dimensions its figures group by
    description: str  # a paragraph for the New study page
    axes: Callable[[Any], dict[str, Any]]  # study-level values of the explorer's axes
    summarise: Callable[[list], tuple[Any, str, dict[str, Any]]]  # local outcomes -> (table, text, checks)
    grid: tuple[GridField, ...] = ()
    data_field: str = "data"  # the data spec the New study page's Data column edits
    # The class-selection steps its jobs' tasks take from study fields (`include`, `half`, `fraction`)
    # -> those fields: what a class check at submit names when a job's task keeps too few classes.
    class_fields: tuple[tuple[str, str], ...] = ()


STUDY_KINDS: dict[str, StudyKind] = {
    "yosinski": StudyKind(
        YosinskiSpec, yosinski.expand, ("seed", "treatment", "n", "probe", "against"),
        "Yosinski et al. 2014: per seed, split the classes into halves A and B, train baseA and baseB, then "
        "retrain on B with the first n units from A or B, frozen or fine-tuned (+), or random and frozen. "
        "Optional probes: the Hessian sharpness of each network, CKA of each transfer against baseB and its source.",
        yosinski.axes, yosinski.summarise,
        (GridField("seeds", "Seeds (one class split each)"), GridField("treatments", "Treatments", TREATMENTS),
         GridField("n", "Units transferred n (empty = all)")),
        class_fields=(("include", "groups"), ("half", "data.classes")),
    ),
    "cross_dataset": StudyKind(
        CrossDatasetSpec, cross.expand, ("seed", "target", "amount", "treatment", "n", "probe"),
        "Cross-data-set transfer (Chen et al. 2022; Neyshabur et al. 2020): per seed, pretrain baseA on the "
        "source once; on every target and data amount, train baseB from scratch (RI-T) and from baseA's first n "
        "units, frozen (AnB) or fine-tuned (AnB+). Measured: the domain gap source -> target (proxy A-distance, "
        "MMD) and the target's diversity, Chen's T of every AnB+ network, and LogME, LEEP, NCE and H-score of "
        "baseA on each target. The Data column edits the source, the Targets box the targets.",
        cross.axes, cross.summarise,
        (GridField("seeds", "Seeds (one pretraining each)"), GridField("treatments", "Treatments", CROSS_TREATMENTS),
         GridField("n", "Units transferred n (empty = all)"),
         GridField("amounts", "Training images per class on the target (data amount; all = every image)",
                   all_is_none=True, empty=[None]),
         GridField("class_fractions", "Share of each target's classes kept (diversity; all = every class)",
                   number=float, all_is_none=True, empty=[None]),
         GridField("depths", "Network depth in conv blocks (empty = the network's own)")),
        data_field="source", class_fields=(("fraction", "class_fractions"),),
    ),
    "basins": StudyKind(
        BasinsSpec, basins.expand, ("seed", "target", "treatment", "run", "n", "probe", "pair", "runs"),
        "Neyshabur et al. 2020's basins: per seed, pretrain baseA on the source; on every target, several runs "
        "fine-tuned from it (P-T, AnB+) and several trained from scratch (RI-T, baseB), each with its own seed. "
        "Measured between every pair of runs of a kind: the linear interpolation path and its barrier, CKA, the "
        "parameter distance and the mistake overlap; on every run, module criticality. The Data column edits the "
        "source, the Targets box the targets.",
        basins.axes, basins.summarise,
        (GridField("seeds", "Seeds (one pretraining each)"),),
        data_field="source",
    ),
    "model_selection": StudyKind(
        ModelSelectionSpec, selection.expand, ("candidate", "amount", "seed", "treatment", "n", "probe"),
        "Model selection (You et al. 2021; Nguyen et al. 2020): which of K candidate sources should you fine-tune? "
        "Each candidate (pretrained here on a source task, or a pretrained network: a weights file or a lab "
        "network) is scored on the target without training (LogME, LEEP, NCE, H-score), then fine-tuned on it "
        "with every seed; per data amount, the rank agreement of each score with the fine-tuned accuracy "
        "(weighted Kendall's tau, Spearman, top-1 hit) and what scoring cost against fine-tuning.",
        selection.axes, selection.summarise,
        (GridField("seeds", "Fine-tuning seeds per candidate"),
         GridField("amounts", "Training images per class on the target (data amount; all = every image)",
                   all_is_none=True, empty=[None])),
        data_field="target",
    ),
}


def parse_study(obj: Any) -> Spec:
    """A study spec of any kind (its `study` field names the kind), validated."""
    kind = obj.get("study", "yosinski") if isinstance(obj, dict) else None
    if not isinstance(kind, str) or kind not in STUDY_KINDS:
        raise SpecError(f"unknown study kind {kind!r} (known: {', '.join(STUDY_KINDS)})", field="study")
    return parse(STUDY_KINDS[kind].spec, obj)


def expand(study: Spec) -> list[PlannedJob]:
    """A study's jobs, every job after the jobs it depends on."""
    return STUDY_KINDS[study.study].expand(study)


def expand_seed(study: Spec, seed: int) -> list[PlannedJob]:
    """The jobs one more seed of a sequential-seeds study adds (its pretraining first): the study with
    that seed alone and no precision rule of its own."""
    return expand(study.model_copy(update={"seeds": [seed], "precision": None}))


def measures_sharpness(kind: str) -> bool:
    """Whether a study kind's probes include the Hessian sharpness."""
    probes = STUDY_KINDS[kind].spec.model_fields.get("probes")
    return probes is not None and "sharpness" in probes.annotation.model_fields


def study_sharpness_cost(study: Spec) -> ProbeCost | None:
    """What a study's sharpness probes add to its training (backend.studies.plan.sharpness_cost); None
    when it runs none."""
    if getattr(getattr(study, "probes", None), "sharpness", None) is None:
        return None
    return sharpness_cost(expand(study))


def fitting_sharpness(spec: dict[str, Any], budget: float = SHARPNESS_BUDGET) -> dict[str, Any] | None:
    """The richest sharpness settings of SHARPNESS_LADDER whose estimated cost for the study `spec` (a
    spec dict, whatever its own probes.sharpness says) is within `budget` times its training; None
    when none is, when the cost cannot be estimated, or when the study's kind has no sharpness probe."""
    if not measures_sharpness(spec.get("study", "yosinski")):
        return None
    for rung in SHARPNESS_LADDER:
        trial = {**spec, "probes": {**spec.get("probes", {}), "sharpness": rung}}
        ratio = sharpness_cost(expand(parse_study(trial))).ratio
        if ratio is None:
            return None
        if ratio <= budget:
            return dict(rung)
    return None
