"""A preset: a ready-made study from the literature as a plain spec dict, its quick size, and the rule
that sets its sharpness by its cost. The catalogue is backend.specs.presets."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from backend.specs.base import set_field


@dataclass(frozen=True)
class Preset:
    """A ready-made study: its spec as a plain dict (so the CLI and the UI can show and edit it), and
    the overrides of its quick size, which finishes in a few minutes on a laptop CPU.

    Sharpness, where the study's kind measures it, is set by a rule on its cost unless the spec sets
    `probes.sharpness` itself: on, with the richest settings whose estimated cost at the quick size is
    within the budget (backend.studies.fitting_sharpness), off where none is; `spec_dict` adds it."""

    study: str  # the study kind, a key of backend.studies.STUDY_KINDS
    asks: str  # one line: the question it answers
    spec: dict[str, Any]
    quick: dict[str, Any] = field(default_factory=dict)  # dotted field paths -> values
    figure: str = ""  # a paragraph for the New study page: which figure answers the question, what to look for
    # The class folder names, in the folder's sorted order (its label ids), that the spec's class ids
    # (`groups`) were written for; empty when any folder's classes will do.
    classes: tuple[str, ...] = ()

    def spec_dict(self, quick: bool = False) -> dict[str, Any]:
        """A fresh copy of the spec to edit, at its quick size when asked, with its sharpness by the rule."""
        spec = json.loads(json.dumps(self.spec))
        if self.sharpness_by_cost:  # before the quick overrides: one may set a sharpness field
            set_field(spec, "probes.sharpness", self.fitting_sharpness)
        return self._at_quick_size(spec) if quick else spec

    @property
    def sharpness_by_cost(self) -> bool:
        """Whether the cost rule sets its probes.sharpness: its kind measures sharpness, its spec leaves it unset."""
        from backend.studies import measures_sharpness  # at call time: backend.studies imports this package

        return measures_sharpness(self.study) and "sharpness" not in self.spec.get("probes", {})

    @cached_property
    def fitting_sharpness(self) -> dict[str, Any] | None:
        """probes.sharpness by the cost rule, decided at the quick size: the richest settings within the
        budget there, None (off) where none is."""
        from backend.studies import fitting_sharpness

        return fitting_sharpness(self._at_quick_size(json.loads(json.dumps(self.spec))))

    def _at_quick_size(self, spec: dict[str, Any]) -> dict[str, Any]:
        for path, value in self.quick.items():
            set_field(spec, path, value)
        return spec
