"""A study spec's probes as the New study page shows them: which are switches, and a line saying which
the spec turns on and off, in the words of the spec's own fields (so it holds for any preset or edit)."""

from __future__ import annotations

from backend.specs import Spec


def switches(probes: Spec) -> dict[str, bool]:
    """Probe name -> on, for the probes a study spec switches on or off (a bool, or settings that may be
    None); other fields (the treatments probed, the probe images) are left out."""
    return {name: getattr(probes, name) not in (None, False) for name, value in
            ((name, getattr(probes, name)) for name in type(probes).model_fields)
            if isinstance(value, (bool, Spec)) or (value is None and name != "treatments")}


def probes_text(probes: Spec) -> str:
    """'Probes on: CKA of each transfer ... (512 images). Off: sharpness of every network ...'."""
    fields = type(probes).model_fields

    def described(name: str) -> str:
        settings = getattr(probes, name)
        images = getattr(settings, "images", None) if isinstance(settings, Spec) else None
        return fields[name].description + (f" ({images} images)" if images else "")

    on = [described(name) for name, is_on in switches(probes).items() if is_on]
    off = [fields[name].description for name, is_on in switches(probes).items() if not is_on]
    return " ".join(part for part in (f"Probes on: {'; '.join(on)}." if on else "No probe on.",
                                      f"Off: {'; '.join(off)}." if off else "") if part)
