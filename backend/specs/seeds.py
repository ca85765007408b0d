"""Sequential seeds: a study that asks for a precision instead of a seed count.

A study lists its first seeds as usual; `precision` then adds one seed at a time, each with its
pretraining first, until the 95% interval of a key quantity is no wider than asked, or `max_seeds`
is reached. It stops on the interval's width, never on significance: stopping when a result turns
significant biases it (PAPERS.md, "Sequential seeds").
"""

from __future__ import annotations

from pydantic import Field

from backend.specs.base import Spec, SpecError

# The per-seed paired quantities each study kind can stop on; backend.quantities computes them.
SEED_QUANTITIES: dict[str, dict[str, str]] = {
    "yosinski": {"anb_plus_gain": "AnB+ minus baseB, mean over n (accuracy points)",
                 "anb_drop": "AnB at the smallest n minus AnB at the deepest n (accuracy points)"},
    "cross_dataset": {"pt_gain": "P-T (AnB+, deepest n) minus RI-T (baseB), mean over targets and settings "
                                 "(accuracy points)"},
    "basins": {"barrier_gap": "RI-T pairs' loss barrier minus P-T pairs' (loss)",
               "cka_gap": "P-T pairs' CKA (mean diagonal) minus RI-T pairs'",
               "l2_gap": "RI-T pairs' l2 distance minus P-T pairs'",
               "mistakes_gap": "P-T pairs' mistake overlap (Jaccard) minus RI-T pairs'"},
}


class Precision(Spec):
    """Add seeds until the 95% interval of `quantity` is at most +/- `half_width`, up to `max_seeds`."""

    quantity: str = Field(description="a per-seed paired difference the study measures (SEED_QUANTITIES)")
    half_width: float = Field(gt=0, description="the widest acceptable 95% interval, +/- this, in the "
                              "quantity's units")
    max_seeds: int = Field(12, ge=2, le=200, description="the budget: no seed is added beyond this many")

    def check(self, kind: str, seeds: list[int]) -> None:
        """What needs the study around it: a quantity of its kind, a budget above its first seeds."""
        known = SEED_QUANTITIES.get(kind, {})
        if self.quantity not in known:
            raise SpecError(f"unknown quantity {self.quantity!r} for a {kind} study (known: {', '.join(known)})",
                            field="precision.quantity")
        if len(seeds) < 2:
            raise SpecError("an interval needs at least 2 first seeds", field="seeds")
        if self.max_seeds < len(seeds):
            raise SpecError(f"{self.max_seeds} is fewer than the {len(seeds)} first seeds", field="precision.max_seeds")
