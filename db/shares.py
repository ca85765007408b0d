"""Shared views: immutable snapshots of what a page showed, behind a short id."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from db.schema import Share
from db.session import get_engine, session_scope

SHARE_ID = re.compile(r"^[A-Za-z0-9_-]{6,32}$")


@dataclass(frozen=True)
class Snapshot:
    id: str
    page: str
    params: dict[str, Any]
    rows: list[dict[str, Any]]
    created_at: float
    caption: str = ""
    columns: list[str] | None = None
    spec_hash: str | None = None


class Shares:
    def __init__(self, engine: Engine | None = None):
        self.engine = engine or get_engine()

    def create(self, page: str, params: dict[str, Any], rows: list[dict[str, Any]], caption: str = "",
               columns: list[str] | None = None, spec_hash: str | None = None) -> str:
        """Store a view: its parameters, the rows it shows, its caption, column names and the hash of
        the study spec, so the link explains itself after the study has changed or gone."""
        share_id = secrets.token_urlsafe(8)
        with session_scope(self.engine) as s:
            s.add(Share(id=share_id, page=page, params=params, rows=rows, caption=caption,
                        columns=columns or (list(rows[0]) if rows else []), spec_hash=spec_hash))
        return share_id

    def get(self, share_id: str) -> Snapshot | None:
        """The snapshot, or None for an unknown or malformed id (a tampered link)."""
        if not SHARE_ID.match(share_id or ""):
            return None
        with session_scope(self.engine) as s:
            row = s.get(Share, share_id)
            if row is None:
                return None
            return Snapshot(row.id, row.page, dict(row.params), list(row.rows), row.created_at, row.caption,
                            list(row.columns) if row.columns is not None else None, row.spec_hash)
