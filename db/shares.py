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


class Shares:
    def __init__(self, engine: Engine | None = None):
        self.engine = engine or get_engine()

    def create(self, page: str, params: dict[str, Any], rows: list[dict[str, Any]]) -> str:
        share_id = secrets.token_urlsafe(8)
        with session_scope(self.engine) as s:
            s.add(Share(id=share_id, page=page, params=params, rows=rows))
        return share_id

    def get(self, share_id: str) -> Snapshot | None:
        """The snapshot, or None for an unknown or malformed id (a tampered link)."""
        if not SHARE_ID.match(share_id or ""):
            return None
        with session_scope(self.engine) as s:
            row = s.get(Share, share_id)
            if row is None:
                return None
            return Snapshot(row.id, row.page, dict(row.params), list(row.rows), row.created_at)
