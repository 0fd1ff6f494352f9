"""The server's database: SQLite (one file, WAL) by default, PostgreSQL by URL.

SQL is written once, portably, with `?` placeholders; PostgreSQL gets them as `%s`. One
connection per database, shared behind a lock: the server's load is a team's CLI calls and a
few workers, not a web shop's.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Each step runs once, in order; the version reached is kept in schema_migrations.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE orgs (name TEXT PRIMARY KEY, created_at DOUBLE PRECISION NOT NULL)",
        "CREATE TABLE users (name TEXT PRIMARY KEY, org TEXT NOT NULL REFERENCES orgs(name), "
        "created_at DOUBLE PRECISION NOT NULL)",
        "CREATE TABLE tokens (token_hash TEXT PRIMARY KEY, user_name TEXT NOT NULL "
        "REFERENCES users(name), created_at DOUBLE PRECISION NOT NULL)",
        "CREATE TABLE secrets (org TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, "
        "updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (org, name))",
        # One row per run folder, uploaded or run here. `state` is where the row is in its
        # life (uploading, queued, running, done, cancelled, interrupted); `status` is the
        # run's own outcome read from its folder (pass, fail, ..., partial).
        "CREATE TABLE runs (org TEXT NOT NULL, run_id TEXT NOT NULL, user_name TEXT NOT NULL, "
        "experiment_id TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL, status TEXT, "
        "created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL, "
        "request TEXT, cancel_requested INTEGER NOT NULL DEFAULT 0, exit_code INTEGER, "
        "message TEXT, manifest_digest TEXT, PRIMARY KEY (org, run_id))",
        "CREATE INDEX runs_state ON runs (state, created_at)",
        "CREATE TABLE model_usage (id TEXT PRIMARY KEY, org TEXT NOT NULL, "
        "user_name TEXT NOT NULL, called_at DOUBLE PRECISION NOT NULL, api TEXT NOT NULL, "
        "model TEXT, http_status INTEGER NOT NULL, input_tokens BIGINT NOT NULL, "
        "output_tokens BIGINT NOT NULL, cache_creation_input_tokens BIGINT NOT NULL, "
        "cache_read_input_tokens BIGINT NOT NULL, cost_usd DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX model_usage_user ON model_usage (user_name, called_at)",
    ),
)


class DatabaseError(Exception):
    pass


def is_postgres(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("postgresql://", "postgres://"))


class Database:
    def __init__(self, conn: Any, postgres: bool, where: str, url: str | None = None) -> None:
        self._conn = conn
        self._pg = postgres
        self._url = url  # to connect again when PostgreSQL dropped the connection
        self._lock = threading.RLock()
        self._in_transaction = False
        self.where = where  # for messages: a path, or the URL without its password

    @classmethod
    def open(cls, data_dir: Path, url: str | None = None) -> Database:
        if is_postgres(url):
            assert url is not None
            try:
                import psycopg
            except ImportError:
                raise DatabaseError("--database-url postgresql://...: psycopg is not installed "
                                    "(pip install 'pytest-axp[server-postgres]')") from None
            try:
                pg: Any = psycopg.connect(url, autocommit=True)
            except psycopg.Error as e:
                raise DatabaseError(f"cannot connect to {_hide_password(url)}: "
                                    f"{' '.join(str(e).split())}") from None
            db = cls(pg, True, _hide_password(url), url)
        elif url:
            raise DatabaseError(f"--database-url {_hide_password(url)}: give a postgresql:// "
                                "URL (leave it out for SQLite under --data-dir)")
        else:
            import sqlite3

            path = data_dir / "axp.sqlite3"
            conn: Any = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                   timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            db = cls(conn, False, str(path))
        db.migrate()
        return db

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self._pg else sql

    def _lost(self) -> bool:
        """PostgreSQL closed the connection (restarted, or an admin ended the session)."""
        return self._pg and bool(getattr(self._conn, "broken", False) or self._conn.closed)

    def _reconnect(self) -> None:
        import psycopg

        with contextlib.suppress(Exception):
            self._conn.close()
        assert self._url is not None
        self._conn = psycopg.connect(self._url, autocommit=True)

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """One statement. A connection found lost is made again and the statement sent once
        more, unless it was part of a transaction: that one is lost, the next works."""
        if self._lost():
            self._reconnect()
        try:
            return self._conn.execute(self._sql(sql), tuple(params))
        except Exception:
            if self._in_transaction or not self._lost():
                raise
        self._reconnect()
        return self._conn.execute(self._sql(sql), tuple(params))

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        with self._lock:
            cur = self._execute(sql, params)
            return int(cur.rowcount or 0)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._execute(sql, params)
            names = [d[0] for d in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self.all(sql, params)
        return rows[0] if rows else None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            self._execute("BEGIN")
            self._in_transaction = True
            try:
                yield
                # never sent again on a new connection: there it would commit nothing
                self._conn.execute("COMMIT")
            except BaseException:
                if not self._lost():
                    self._conn.execute("ROLLBACK")
                raise
            finally:
                self._in_transaction = False

    def migrate(self) -> None:
        with self._lock:
            self._conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                               "(version INTEGER PRIMARY KEY)")
            row = self.one("SELECT MAX(version) AS v FROM schema_migrations")
            done = int(row["v"]) if row and row["v"] is not None else 0
            for version, steps in enumerate(MIGRATIONS[done:], done + 1):
                with self.transaction():
                    for step in steps:
                        self._conn.execute(step)
                    self._conn.execute(self._sql("INSERT INTO schema_migrations (version) "
                                                 "VALUES (?)"), (version,))


def _hide_password(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
