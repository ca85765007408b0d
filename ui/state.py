"""Page state that lives in the URL, so the address bar is always a link to the current view.

A page binds each of its parameters once: the value comes from the URL when it is valid (a bad
value falls back to the default with a message, never a traceback), else from the last value this
session used on that page (so state survives page switches), else from the default. At the end of
the run `sync()` writes the page's current values back into `st.query_params`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import streamlit as st


@dataclass
class PageState:
    page: str
    problems: list[str] = field(default_factory=list)
    _bound: dict[str, Callable[[Any], str]] = field(default_factory=dict)

    def key(self, name: str) -> str:
        return f"{self.page}.{name}"

    def bind(self, name: str, default: Any, parse: Callable[[str], Any] = str,
             valid: Callable[[Any], bool] | None = None, show: Callable[[Any], str] = str) -> str:
        """Put the parameter's value in `st.session_state[key]` and return the key, for a widget."""
        key = self.key(name)
        self._bound[name] = show
        raw = st.query_params.get(name)
        if raw is not None and st.session_state.get(f"_{key}.raw") != raw:
            st.session_state[f"_{key}.raw"] = raw
            try:
                value = parse(raw)
                if valid is not None and not valid(value):
                    raise ValueError("not one of the choices")
                st.session_state[key] = value
            except (ValueError, TypeError, KeyError) as exc:
                self.problems.append(f"Ignored `{name}={raw}` in the link ({exc or 'invalid'}); showing the default.")
                st.session_state[key] = default
        elif key not in st.session_state:
            remembered = st.session_state.get(f"_{key}.last", default)
            st.session_state[key] = remembered if valid is None or valid(remembered) else default
        elif valid is not None and not valid(st.session_state[key]):
            st.session_state[key] = default
        return key

    def get(self, name: str) -> Any:
        return st.session_state[self.key(name)]

    def report(self) -> None:
        for problem in self.problems:
            st.warning(problem)

    def sync(self) -> None:
        """Write this page's values to the URL (and remember them for the next visit)."""
        params = {}
        for name, show in self._bound.items():
            value = st.session_state.get(self.key(name))
            st.session_state[f"_{self.key(name)}.last"] = value
            if value is not None and value != "" and value != []:
                params[name] = show(value)
                st.session_state[f"_{self.key(name)}.raw"] = params[name]
        if dict(st.query_params) != params:
            st.query_params.from_dict(params)


def ints(raw: str) -> list[int]:
    return [int(v) for v in raw.split(",") if v.strip()]


def strs(raw: str) -> list[str]:
    return [v for v in raw.split(",") if v]


def joined(values: list[Any]) -> str:
    return ",".join(map(str, values))


def flag(raw: str) -> bool:
    """A toggle in the URL: 1 or 0."""
    if raw not in ("0", "1"):
        raise ValueError("expected 0 or 1")
    return raw == "1"


def shown(value: bool) -> str:
    return "1" if value else "0"
