"""Engines, sessions and migrations: one engine per URL per process, one session scope for all.

SQLite (the default) is opened with WAL, a busy timeout and foreign keys on; Postgres scales out.
The schema is created and upgraded by Alembic only, serialised by a lock so that two processes
starting together never race the migration.
"""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend import settings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000


class StoreError(RuntimeError):
    """The database failed or refused an operation; the message says which and why."""


def database_url() -> str:
    return settings.get("database_url")


def store_name(engine: Engine) -> str:
    """The store as a report may name it: a SQLite file by its path inside the project (var/transferlab.db)
    or, outside it, by its file name alone; a server by its driver, database, host and port. Never a
    user, a password or a path of the machine that wrote the report."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            return "SQLite store in memory"
        path = Path(url.database).expanduser().resolve()
        inside = path.is_relative_to(settings.PROJECT_ROOT)
        return f"SQLite file {path.relative_to(settings.PROJECT_ROOT) if inside else path.name}"
    where = f"{url.host}:{url.port}" if url.port else url.host or "a local socket"
    return f"{url.get_backend_name()} database {url.database} on {where}"


def get_engine(url: str | None = None) -> Engine:
    """The process's engine for `url` (default: `database_url()` as the settings say now), migrated to the
    latest schema."""
    return _engine(url or database_url())  # cached by the URL itself, so a changed setting is followed


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    migrate(engine)
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL, far fewer fsyncs
    cursor.close()


@lru_cache(maxsize=8)
def _sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """Commit on success, roll back on error, always close; driver errors become StoreError."""
    session = _sessionmaker(engine or get_engine())()
    try:
        yield session
        session.commit()
    except DBAPIError as exc:
        session.rollback()
        raise StoreError(f"database error: {exc.orig}") from exc
    except SQLAlchemyError as exc:
        session.rollback()
        raise StoreError(f"database error: {exc}") from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def migrate(engine: Engine) -> None:
    """Upgrade the schema to the latest Alembic revision, one process at a time."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with _migration_lock(engine), engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(7243001)"))
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(7243001)"))
                conn.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
