"""What the server keeps: organisations, users and their tokens, secrets, runs, model usage,
in the database; run folders as files under the data directory, one folder per organisation
in the layout `axp local run` writes (so the query code reads them unchanged):

    DATA_DIR/axp.sqlite3                      (SQLite only)
    DATA_DIR/orgs/<org>/runs/<run-id>/        complete run folders (what the dashboard serves)
    DATA_DIR/orgs/<org>/derived/<run-id>/     the query tables' Parquet cache
    DATA_DIR/orgs/<org>/uploads/<run-id>/     an upload under way (never listed)
    DATA_DIR/orgs/<org>/jobs/<run-id>/        a remote run's output
    DATA_DIR/orgs/<org>/bundles/<bundle-id>/  the experiment and files sent for remote runs,
                                              kept while one of its runs may still run
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets as _secrets
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .db import Database

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
TOKEN_PREFIX = "axp_"

# Where a row is in its life. Only `done` rows with a folder under runs/ are complete.
UPLOADING, QUEUED, RUNNING, DONE = "uploading", "queued", "running", "done"
CANCELLED, INTERRUPTED = "cancelled", "interrupted"
FINISHED = (DONE, CANCELLED, INTERRUPTED)
# A remote run in these states may run (again): its bundle is still needed.
NEEDS_BUNDLE = (QUEUED, RUNNING, INTERRUPTED)


class StoreError(ValueError):
    pass


def check_name(kind: str, name: str) -> str:
    if not _NAME.fullmatch(name):
        raise StoreError(f"{kind} {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit")
    return name


def check_secret_name(name: str) -> str:
    if not _SECRET_NAME.fullmatch(name):
        raise StoreError(f"secret {name!r}: an environment variable name (letters, digits, "
                         "'_'; not starting with a digit)")
    return name


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class User:
    name: str
    org: str


class Store:
    def __init__(self, db: Database, data_dir: Path) -> None:
        self.db = db
        self.data_dir = data_dir

    # -- folders -----------------------------------------------------------------------------

    def org_dir(self, org: str) -> Path:
        return self.data_dir / "orgs" / check_name("organisation", org)

    def runs_dir(self, org: str) -> Path:
        """The organisation's run folders: what `axp query` reads and the dashboard serves."""
        return self.org_dir(org) / "runs"

    def uploads_dir(self, org: str) -> Path:
        return self.org_dir(org) / "uploads"

    def jobs_dir(self, org: str) -> Path:
        return self.org_dir(org) / "jobs"

    def bundles_dir(self, org: str) -> Path:
        return self.org_dir(org) / "bundles"

    def release_bundles(self, org: str, bundle_ids: Iterable[str] | None = None) -> list[str]:
        """Remove the bundles (given, or of every finished remote run) that no run still needs:
        a queued, running or interrupted (resumable) run keeps its bundle. The removed ids."""
        needed: set[str] = set()
        finished: set[str] = set()
        for row in self.db.all("SELECT state, request FROM runs WHERE org = ? AND kind = ?",
                               (org, "remote")):
            bundle = bundle_of(row["request"])
            if bundle:
                (needed if row["state"] in NEEDS_BUNDLE else finished).add(bundle)
        removed = []
        for bundle in sorted(set(bundle_ids) if bundle_ids is not None else finished):
            path = self.bundles_dir(org) / bundle
            if bundle not in needed and _NAME.fullmatch(bundle) and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(bundle)
        return removed

    def orgs(self) -> list[str]:
        return [str(r["name"]) for r in self.db.all("SELECT name FROM orgs", ())]

    # -- users and tokens --------------------------------------------------------------------

    def add_user(self, name: str, org: str) -> str:
        """A new user (and their organisation if new); the token, which is never stored."""
        check_name("user", name)
        check_name("organisation", org)
        token = TOKEN_PREFIX + _secrets.token_urlsafe(32)
        now = time.time()
        with self.db.transaction():
            if self.db.one("SELECT name FROM users WHERE name = ?", (name,)):
                raise StoreError(f"user {name!r} exists already")
            if not self.db.one("SELECT name FROM orgs WHERE name = ?", (org,)):
                self.db.execute("INSERT INTO orgs (name, created_at) VALUES (?, ?)", (org, now))
            self.db.execute("INSERT INTO users (name, org, created_at) VALUES (?, ?, ?)",
                            (name, org, now))
            self.db.execute("INSERT INTO tokens (token_hash, user_name, created_at) "
                            "VALUES (?, ?, ?)", (hash_token(token), name, now))
        self.runs_dir(org).mkdir(parents=True, exist_ok=True)
        return token

    def user_for_token(self, token: str | None) -> User | None:
        if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        digest = hash_token(token)
        row = self.db.one("SELECT t.token_hash, u.name, u.org FROM tokens t JOIN users u "
                          "ON u.name = t.user_name WHERE t.token_hash = ?", (digest,))
        if row is None or not hmac.compare_digest(str(row["token_hash"]), digest):
            return None
        return User(str(row["name"]), str(row["org"]))

    # -- secrets -----------------------------------------------------------------------------

    def set_secret(self, org: str, name: str, value: str) -> None:
        check_name("organisation", org)
        check_secret_name(name)
        if not self.db.one("SELECT name FROM orgs WHERE name = ?", (org,)):
            raise StoreError(f"no organisation {org!r} (add a user to it first: "
                             "axp server user add NAME --org ORG)")
        with self.db.transaction():
            self.db.execute("DELETE FROM secrets WHERE org = ? AND name = ?", (org, name))
            self.db.execute("INSERT INTO secrets (org, name, value, updated_at) "
                            "VALUES (?, ?, ?, ?)", (org, name, value, time.time()))

    def secrets(self, org: str) -> dict[str, str]:
        rows = self.db.all("SELECT name, value FROM secrets WHERE org = ?", (org,))
        return {str(r["name"]): str(r["value"]) for r in rows}

    # -- runs --------------------------------------------------------------------------------

    def run(self, org: str, run_id: str) -> dict[str, Any] | None:
        return self.db.one("SELECT * FROM runs WHERE org = ? AND run_id = ?", (org, run_id))

    def runs(self, org: str, limit: int = 200) -> list[dict[str, Any]]:
        """The organisation's runs, newest first; uploads under way are left out."""
        return self.db.all("SELECT * FROM runs WHERE org = ? AND state <> ? "
                           "ORDER BY created_at DESC, run_id DESC LIMIT ?",
                           (org, UPLOADING, limit))

    def complete_run_ids(self, org: str) -> list[str]:
        rows = self.db.all("SELECT run_id FROM runs WHERE org = ? AND state IN (?, ?, ?) "
                           "ORDER BY created_at DESC", (org, DONE, CANCELLED, INTERRUPTED))
        root = self.runs_dir(org)
        return [str(r["run_id"]) for r in rows if (root / str(r["run_id"])).is_dir()]

    def update_run(self, org: str, run_id: str, **fields: Any) -> int:
        fields["updated_at"] = time.time()
        names = sorted(fields)
        sets = ", ".join(f"{n} = ?" for n in names)
        return self.db.execute(f"UPDATE runs SET {sets} WHERE org = ? AND run_id = ?",
                               [fields[n] for n in names] + [org, run_id])

    def insert_run(self, org: str, run_id: str, user: str, experiment_id: str, kind: str,
                   state: str, request: str | None = None) -> None:
        now = time.time()
        self.db.execute("INSERT INTO runs (org, run_id, user_name, experiment_id, kind, state, "
                        "created_at, updated_at, request) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (org, run_id, user, experiment_id, kind, state, now, now, request))

    def claim_next(self) -> dict[str, Any] | None:
        """The oldest queued remote run, now marked running by this caller (or None)."""
        for row in self.db.all("SELECT org, run_id FROM runs WHERE state = ? "
                               "ORDER BY created_at, run_id LIMIT 5", (QUEUED,)):
            took = self.db.execute("UPDATE runs SET state = ?, updated_at = ? WHERE org = ? "
                                   "AND run_id = ? AND state = ?",
                                   (RUNNING, time.time(), row["org"], row["run_id"], QUEUED))
            if took:
                return self.run(str(row["org"]), str(row["run_id"]))
        return None

    def mark_interrupted(self) -> list[tuple[str, str]]:
        """At start: runs left `running` by a server that died are interrupted (resumable)."""
        rows = self.db.all("SELECT org, run_id FROM runs WHERE state = ?", (RUNNING,))
        for row in rows:
            self.update_run(str(row["org"]), str(row["run_id"]), state=INTERRUPTED,
                            message="the server stopped during the run; "
                                    "`axp runs resume ID` runs what is missing")
        return [(str(r["org"]), str(r["run_id"])) for r in rows]

    # -- model usage -------------------------------------------------------------------------

    def add_usage(self, user: User, api: str, model: str | None, http_status: int,
                  usage: dict[str, Any]) -> None:
        from ulid import ULID

        self.db.execute(
            "INSERT INTO model_usage (id, org, user_name, called_at, api, model, http_status, "
            "input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, "
            "cost_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (str(ULID()), user.org, user.name, time.time(), api, model, http_status,
             int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0)),
             int(usage.get("cache_creation_input_tokens", 0)),
             int(usage.get("cache_read_input_tokens", 0)), float(usage.get("cost_usd", 0.0))))

    def usage_by_user(self, org: str | None = None) -> list[dict[str, Any]]:
        """Managed model access per user (every organisation, or one)."""
        where, params = ("WHERE org = ? ", (org,)) if org else ("", ())
        rows = self.db.all(
            "SELECT org, user_name, COUNT(*) AS calls, SUM(input_tokens) AS input_tokens, "
            "SUM(output_tokens) AS output_tokens, SUM(cost_usd) AS cost_usd FROM model_usage "
            f"{where}GROUP BY org, user_name ORDER BY org, user_name", params)
        return [{"org": str(r["org"]), "user": str(r["user_name"]), "calls": int(r["calls"]),
                 "input_tokens": int(r["input_tokens"]), "output_tokens": int(r["output_tokens"]),
                 "cost_usd": float(r["cost_usd"])} for r in rows]

    def usage(self, user: User) -> dict[str, Any]:
        row = self.db.one(
            "SELECT COUNT(*) AS calls, COALESCE(SUM(input_tokens), 0) AS input_tokens, "
            "COALESCE(SUM(output_tokens), 0) AS output_tokens, "
            "COALESCE(SUM(cost_usd), 0) AS cost_usd FROM model_usage WHERE user_name = ?",
            (user.name,))
        assert row is not None
        return {k: (float(v) if k == "cost_usd" else int(v)) for k, v in row.items()}


def bundle_of(request: Any) -> str | None:
    """The bundle id a remote run's request names (None for anything else)."""
    try:
        bundle = json.loads(request)["bundle"] if request else None
    except (ValueError, TypeError, KeyError):
        return None
    return bundle if isinstance(bundle, str) else None
