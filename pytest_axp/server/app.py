"""`axp server`'s one ASGI application: the CLI's HTTP API under /api/v1, managed model access
under /gateway, and (later) the viewer as the dashboard.

Every API call carries `Authorization: Bearer <token>`; a user reaches their organisation's
runs only, and another organisation's run answers 404 as a missing one does.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tarfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from . import manifest as M
from .db import Database
from .managed import PREFIX as GATEWAY_PREFIX
from .managed import ManagedGateway, Receive, Scope, Send
from .store import (
    CANCELLED,
    DONE,
    FINISHED,
    INTERRUPTED,
    QUEUED,
    RUNNING,
    UPLOADING,
    Store,
    User,
    bundle_of,
)
from .worker import OUTPUT, Workers

API = "/api/v1"
MAX_BUNDLE_BYTES = 512 << 20


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _errors(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, str(exc.detail))


def _user(request: Request) -> User:
    store: Store = request.app.state.store
    auth = request.headers.get("authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
    user = store.user_for_token(token)
    if user is None:
        raise HTTPException(401, "unknown or missing token: sign in with `axp auth login`")
    return user


def _run_row(request: Request, user: User, visible_only: bool = True) -> dict[str, Any]:
    store: Store = request.app.state.store
    run_id = request.path_params["run_id"]
    try:
        M.check_run_id(run_id)
    except M.ManifestError:
        raise HTTPException(404, f"no run {run_id}") from None
    row = store.run(user.org, run_id)
    if row is None or (visible_only and row["state"] == UPLOADING):
        raise HTTPException(404, f"no run {run_id}")
    return row


def _public(store: Store, row: dict[str, Any]) -> dict[str, Any]:
    from ..runs import read_run

    out = {k: row[k] for k in ("run_id", "experiment_id", "kind", "state", "status",
                               "created_at", "updated_at", "exit_code", "message")}
    out["user"] = row["user_name"]
    folder = store.runs_dir(str(row["org"])) / str(row["run_id"])
    if folder.is_dir():
        live = read_run(folder)
        out["variants"] = live.variants
        if row["state"] in (QUEUED, RUNNING):
            out["status"] = None
    else:
        out["variants"] = {}
    return out


# -- identity ------------------------------------------------------------------------------

async def whoami(request: Request) -> Response:
    user = _user(request)
    store: Store = request.app.state.store
    return JSONResponse({"user": user.name, "org": user.org,
                         "model_usage": store.usage(user)})


# -- runs ----------------------------------------------------------------------------------

async def list_runs(request: Request) -> Response:
    user = _user(request)
    store: Store = request.app.state.store
    rows = await run_in_threadpool(lambda: [_public(store, r) for r in store.runs(user.org)])
    return JSONResponse(rows)


async def get_run(request: Request) -> Response:
    user = _user(request)
    row = _run_row(request, user)
    return JSONResponse(_public(request.app.state.store, row))


async def run_output(request: Request) -> Response:
    user = _user(request)
    row = _run_row(request, user)
    store: Store = request.app.state.store
    try:
        offset = max(0, int(request.query_params.get("offset", "0")))
    except ValueError:
        raise HTTPException(400, "offset: give a number of bytes") from None
    path = store.jobs_dir(user.org) / str(row["run_id"]) / OUTPUT
    data = b""
    if path.is_file():
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(1 << 20)
    return Response(data, media_type="application/octet-stream",
                    headers={"x-axp-state": str(row["state"]),
                             "x-axp-next-offset": str(offset + len(data))})


async def cancel_run(request: Request) -> Response:
    user = _user(request)
    row = _run_row(request, user)
    store: Store = request.app.state.store
    if row["kind"] != "remote":
        raise HTTPException(409, f"run {row['run_id']} was uploaded, not run here: "
                                 "nothing to cancel")
    if store.db.execute("UPDATE runs SET state = ?, message = ?, updated_at = ? WHERE org = ? "
                        "AND run_id = ? AND state = ?", (CANCELLED, "cancelled before it started",
                                                         time.time(), user.org,
                                                         row["run_id"], QUEUED)):
        await run_in_threadpool(store.release_bundles, user.org,
                                [bundle_of(row["request"]) or ""])
        return JSONResponse({"state": CANCELLED})
    if row["state"] == RUNNING:
        store.update_run(user.org, str(row["run_id"]), cancel_requested=1)
        return JSONResponse({"state": "cancelling"})
    return JSONResponse({"state": row["state"], "note": "the run had already ended"})


async def resume_run(request: Request) -> Response:
    user = _user(request)
    row = _run_row(request, user)
    store: Store = request.app.state.store
    if row["kind"] != "remote" or row["state"] != INTERRUPTED:
        raise HTTPException(409, f"run {row['run_id']} is {row['state']}: only an interrupted "
                                 "remote run can be resumed")
    req = json.loads(row["request"])
    req["resume"] = True
    store.update_run(user.org, str(row["run_id"]), state=QUEUED, request=json.dumps(req),
                     cancel_requested=0, message=None, status=None)
    return JSONResponse({"state": QUEUED})


async def submit_run(request: Request) -> Response:
    """A remote run: the body is a gzipped tar of request.json and the experiment's files."""
    user = _user(request)
    store: Store = request.app.state.store
    body = await _read_limited(request, MAX_BUNDLE_BYTES)
    return JSONResponse(await run_in_threadpool(_queue_bundle, store, user, body))


def _queue_bundle(store: Store, user: User, body: bytes) -> dict[str, Any]:
    from ulid import ULID

    from ..experiment import ExperimentError, load_and_resolve

    bundle_id = str(ULID())
    bundle = store.org_dir(user.org) / "bundles" / bundle_id
    bundle.mkdir(parents=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
            tar.extractall(bundle, filter="data")
        request = json.loads((bundle / "request.json").read_text("utf-8"))
        experiment = M.check_rel_path(str(request["experiment"]))
        repeat = int(request.get("repeat", 1))
        variants = [str(v) for v in request.get("variants", [])]
        files = [str(f) for f in request.get("files", [])]
    except (tarfile.TarError, OSError, ValueError, KeyError, TypeError, M.ManifestError) as e:
        shutil.rmtree(bundle, ignore_errors=True)
        raise HTTPException(400, f"not a run bundle: {e}") from None
    if not 1 <= repeat <= 100:
        shutil.rmtree(bundle, ignore_errors=True)
        raise HTTPException(400, "--repeat: give 1 to 100")
    try:
        resolved = load_and_resolve(str(bundle / experiment))
    except ExperimentError as e:
        shutil.rmtree(bundle, ignore_errors=True)
        raise HTTPException(400, str(e).replace(str(bundle) + "/", "")) from None
    known = {v.id for v in resolved}
    unknown = [v for v in variants if v not in known]
    if unknown:
        shutil.rmtree(bundle, ignore_errors=True)
        raise HTTPException(400, f"unknown variant id(s) {', '.join(unknown)}; this "
                                 f"experiment has: {', '.join(sorted(known))}")
    problem = _outside_bundle(bundle, resolved, files)
    if problem:
        shutil.rmtree(bundle, ignore_errors=True)
        raise HTTPException(400, problem)
    experiment_id = resolved[0].experiment_id
    job = {"bundle": bundle_id, "experiment": experiment, "variants": variants, "files": files,
           "jobs": min(len(variants) or len(resolved), 4)}
    run_ids = []
    for _ in range(repeat):
        run_id = f"{experiment_id}-{ULID()}"
        store.insert_run(user.org, run_id, user.name, experiment_id, "remote", QUEUED,
                         json.dumps(job))
        run_ids.append(run_id)
    return {"run_ids": run_ids}


def _outside_bundle(bundle: Path, variants: list[Any], files: list[str]) -> str | None:
    """A run on the server stages what was sent with it and nothing else of the server's:
    every host-path source, as the experiment and the --file bindings name it, must resolve
    inside the bundle (no `..` out of it, no absolute path, no link)."""
    from ..session import parse_file_bindings
    from ..staging import is_url, plan_entries

    root = os.path.realpath(bundle)
    for item in files:
        rel = item.partition("::")[0] if "::" in item else item.partition("=")[2]
        try:
            M.check_rel_path(rel)
        except M.ManifestError:
            return f"--file {item}: not a path inside the files sent"
    try:
        bindings = parse_file_bindings(
            [f"{bundle / i.partition('::')[0]}::{i.partition('::')[2]}" if "::" in i
             else f"{i.partition('=')[0]}={bundle / i.partition('=')[2]}" for i in files],
            bundle)
    except ValueError as e:
        return str(e).replace(str(bundle) + "/", "")
    for v in variants:
        for p in plan_entries(v.files, Path(v.source_file).parent, bindings):
            if p.source is None or is_url(p.source):
                continue
            real = os.path.realpath(p.source)
            if os.path.commonpath([root, real]) != root:
                return (f"files: source {p.entry.source or p.label} is outside the files sent "
                        "with the run; bind it with --file NAME=PATH")
    return None


async def _read_limited(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# -- upload --------------------------------------------------------------------------------

def _staging(store: Store, user: User, run_id: str) -> Path:
    return store.uploads_dir(user.org) / run_id


def _manifest_file(store: Store, org: str, run_id: str) -> Path:
    return store.org_dir(org) / "manifests" / f"{run_id}.json"


async def upload_begin(request: Request) -> Response:
    """The manifest of a run to upload; answers which files are still to send."""
    user = _user(request)
    store: Store = request.app.state.store
    run_id = request.path_params["run_id"]
    try:
        M.check_run_id(run_id)
        wanted = M.validate(await request.json())
    except (M.ManifestError, ValueError) as e:
        raise HTTPException(400, str(e)) from None
    return JSONResponse(await run_in_threadpool(_begin, store, user, run_id, wanted))


def _begin(store: Store, user: User, run_id: str, wanted: dict[str, Any]) -> dict[str, Any]:
    from ..runs import split_run_id

    digest = M.digest(wanted)
    row = store.run(user.org, run_id)
    if row is not None and row["kind"] != "upload":
        # A run made here comes back unchanged from a download: that is the same run.
        folder = store.runs_dir(user.org) / run_id
        if row["state"] in FINISHED and folder.is_dir() and M.digest(M.build(folder)) == digest:
            return {"complete": True, "missing": []}
        raise HTTPException(409, f"run {run_id} was run on this server; it is not replaced "
                                 "by an upload")
    if row is not None and row["state"] == DONE and row["manifest_digest"] == digest:
        return {"complete": True, "missing": []}
    if row is None:
        try:
            store.insert_run(user.org, run_id, user.name, split_run_id(run_id)[0], "upload",
                             UPLOADING)
        except Exception:  # the same run's upload, begun at the same moment elsewhere
            if store.run(user.org, run_id) is None:
                raise
    staging = _staging(store, user, run_id)
    staging.mkdir(parents=True, exist_ok=True)
    M.write_pending(staging, wanted)
    missing = [path for path, entry in wanted["files"].items()
               if not _staged_ok(staging / path, entry)]
    return {"complete": False, "missing": missing}


def _staged_ok(path: Path, entry: dict[str, Any]) -> bool:
    """Sent already (an upload resumed): present, a regular file, the same bytes."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size != entry["size"]:
            return False
    except OSError:
        return False
    return bool(M.file_sha256(path) == str(entry["sha256"]))


async def upload_file(request: Request) -> Response:
    user = _user(request)
    store: Store = request.app.state.store
    run_id = request.path_params["run_id"]
    rel = request.path_params["path"]
    try:
        M.check_run_id(run_id)
        M.check_rel_path(rel)
    except M.ManifestError as e:
        raise HTTPException(400, str(e)) from None
    staging = _staging(store, user, run_id)
    wanted = M.read_pending(staging)
    row = store.run(user.org, run_id)
    if wanted is None or row is None or row["kind"] != "upload":
        raise HTTPException(409, "send the manifest first")
    entry = wanted["files"].get(rel)
    if entry is None:
        raise HTTPException(400, f"{rel}: not in the manifest")
    dest = staging / rel
    _inside(staging, dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".axp-part")
    h, size = hashlib.sha256(), 0
    with open(part, "wb") as f:
        async for chunk in request.stream():
            size += len(chunk)
            if size > entry["size"]:
                break
            h.update(chunk)
            f.write(chunk)
    if size != entry["size"] or h.hexdigest() != entry["sha256"]:
        part.unlink(missing_ok=True)
        raise HTTPException(400, f"{rel}: the bytes sent do not match the manifest "
                                 f"({size} bytes, sha256 {h.hexdigest()[:12]}...)")
    os.replace(part, dest)
    return JSONResponse({"ok": True})


def _inside(root: Path, path: Path) -> None:
    """No component of `path` below `root` may be a link (the staging area is ours only)."""
    here = root
    for part in path.relative_to(root).parts[:-1]:
        here = here / part
        if here.is_symlink() or (here.exists() and not here.is_dir()):
            raise HTTPException(400, f"{path.relative_to(root)}: not a path inside the run")


async def upload_commit(request: Request) -> Response:
    user = _user(request)
    store: Store = request.app.state.store
    run_id = request.path_params["run_id"]
    try:
        M.check_run_id(run_id)
    except M.ManifestError as e:
        raise HTTPException(400, str(e)) from None
    return JSONResponse(await run_in_threadpool(_commit, store, user, run_id))


def _commit(store: Store, user: User, run_id: str) -> dict[str, Any]:
    from ulid import ULID

    from ..runs import read_run

    staging = _staging(store, user, run_id)
    wanted = M.read_pending(staging)
    row = store.run(user.org, run_id)
    if wanted is None or row is None or row["kind"] != "upload":
        raise HTTPException(409, "send the manifest first")
    missing = [p for p, e in wanted["files"].items() if not _staged_ok(staging / p, e)]
    if missing:
        raise HTTPException(409, f"{len(missing)} file(s) not sent yet, e.g. {missing[0]}")
    M.clear_pending(staging)
    for dirpath, _, names in os.walk(staging):  # leftovers of an earlier, other manifest
        for name in names:
            rel = (Path(dirpath) / name).relative_to(staging).as_posix()
            if rel not in wanted["files"]:
                (Path(dirpath) / name).unlink()
    target = store.runs_dir(user.org) / run_id
    target.parent.mkdir(parents=True, exist_ok=True)
    meta = _manifest_file(store, user.org, run_id)
    meta.parent.mkdir(parents=True, exist_ok=True)
    from ..record.jsonio import write_json

    write_json(meta, wanted)
    # The new folder takes the old one's place in one rename; the old one goes afterwards.
    old = store.uploads_dir(user.org) / f".replaced-{run_id}-{ULID()}"
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
    live = read_run(target)
    store.update_run(user.org, run_id, state=DONE, status=live.status,
                     experiment_id=live.experiment_id, manifest_digest=M.digest(wanted))
    return {"complete": True, "status": live.status}


# -- download ------------------------------------------------------------------------------

def _complete_folder(request: Request, user: User) -> tuple[dict[str, Any], Path]:
    row = _run_row(request, user)
    store: Store = request.app.state.store
    folder = store.runs_dir(user.org) / str(row["run_id"])
    if row["state"] not in FINISHED or not folder.is_dir():
        raise HTTPException(409, f"run {row['run_id']} is {row['state']}: download it when it "
                                 "has finished")
    return row, folder


async def run_manifest(request: Request) -> Response:
    user = _user(request)
    row, folder = _complete_folder(request, user)
    store: Store = request.app.state.store

    def build() -> dict[str, Any]:
        found = M.build(folder)
        stored = M.read_json_file(_manifest_file(store, user.org, str(row["run_id"])))
        if isinstance(stored, dict) and isinstance(stored.get("links"), dict):
            found["links"].update(stored["links"])
        return found

    return JSONResponse(await run_in_threadpool(build))


async def run_file(request: Request) -> Response:
    user = _user(request)
    _, folder = _complete_folder(request, user)
    rel = request.path_params["path"]
    try:
        M.check_rel_path(rel)
    except M.ManifestError as e:
        raise HTTPException(400, str(e)) from None
    path = folder / rel
    here = folder
    for part in Path(rel).parts:
        here = here / part
        if here.is_symlink():
            raise HTTPException(404, f"{rel}: no such file")
    if not path.is_file():
        raise HTTPException(404, f"{rel}: no such file")
    return FileResponse(path, media_type="application/octet-stream")


# -- query ---------------------------------------------------------------------------------

async def query(request: Request) -> Response:
    user = _user(request)
    store: Store = request.app.state.store
    try:
        sql = (await request.json())["sql"]
        if not isinstance(sql, str):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise HTTPException(400, 'send {"sql": "..."}') from None
    return JSONResponse(await run_in_threadpool(_query, store, user, sql))


def _query(store: Store, user: User, sql: str) -> dict[str, Any]:
    import duckdb

    from ..query.engine import connect, plain_value
    from ..query.tables import derived_dir

    runs_dir = store.runs_dir(user.org)
    run_ids = store.complete_run_ids(user.org)
    try:
        con = connect(runs_dir, run_ids)
    except duckdb.Error as e:
        raise HTTPException(500, f"could not derive the tables: {' '.join(str(e).split())}") \
            from None
    try:
        # The caller's SQL reads the organisation's tables and nothing else on this machine.
        allowed = [str(derived_dir(runs_dir, rid)) + "/" for rid in run_ids]
        con.execute("SET allowed_directories = ?", [allowed])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        cur = con.execute(sql)
        if cur.description is None:
            return {"columns": [], "rows": []}
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
    except duckdb.Error as e:
        raise HTTPException(400, f"query failed: {' '.join(str(e).split())}") from None
    finally:
        con.close()
    return {"columns": names, "rows": [[plain_value(v) for v in r] for r in rows]}


# -- the application -----------------------------------------------------------------------

# The browser's sign-in for the dashboard: the same token, in a cookie only the server reads.
COOKIE = "axp_token"
_LOGIN_PAGE = """<!doctype html><meta charset="utf-8"><title>axp server: sign in</title>
<form method="post" action="/login"><p>{message}</p>
<label>token <input type="password" name="token" autocomplete="off" autofocus></label>
<button>sign in</button></form>"""


async def login_page(request: Request) -> Response:
    from starlette.responses import HTMLResponse, RedirectResponse

    if request.method == "GET":
        return HTMLResponse(_LOGIN_PAGE.format(message="Sign in with your axp token."))
    from urllib.parse import parse_qs

    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0].strip()
    store: Store = request.app.state.store
    if store.user_for_token(token) is None:
        return HTMLResponse(_LOGIN_PAGE.format(message="That token is not known."), 401)
    resp = RedirectResponse("/", status_code=303)
    resp.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                    secure=request.url.scheme == "https")
    return resp


class Dashboards:
    """The viewer over each organisation's run folders, for a browser signed in by cookie;
    one viewer app per organisation, made on first use by `factory(runs_dir)`."""

    def __init__(self, store: Store, factory: Callable[[Path], Any]) -> None:
        self.store = store
        self.factory = factory
        self._apps: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from starlette.responses import RedirectResponse

        request = Request(scope)
        user = self.store.user_for_token(request.cookies.get(COOKIE))
        if user is None:
            await RedirectResponse("/login", status_code=303)(scope, receive, send)
            return
        app = self._apps.get(user.org)
        if app is None:
            runs_dir = self.store.runs_dir(user.org)
            runs_dir.mkdir(parents=True, exist_ok=True)
            app = self._apps[user.org] = self.factory(runs_dir)
        await app(scope, receive, send)


def create_app(data_dir: Path, database_url: str | None = None, workers: int = 2,
               dashboard: Callable[[Path], Any] | None = None) -> Any:
    """The server's ASGI app: the API under /api/v1, managed model access under /gateway,
    and, given the viewer's app factory as `dashboard(runs_dir)`, every other path is the
    viewer over the signed-in browser's organisation's runs (sign-in at /login)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    db = Database.open(data_dir, database_url)
    store = Store(db, data_dir)
    interrupted = store.mark_interrupted()
    for org, run_id in interrupted:
        print(f"axp server: run {run_id} ({org}) was interrupted by a stop of the server; "
              "`axp runs resume` runs what is missing", flush=True)
    for org in store.orgs():  # bundles of runs that ended as the server stopped
        store.release_bundles(org)
    pool = Workers(store, workers)
    gateway = ManagedGateway(store)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool.start()
        try:
            yield
        finally:
            await run_in_threadpool(pool.stop)
            await gateway.aclose()
            db.close()

    routes = [
        Route(f"{API}/whoami", whoami),
        Route(f"{API}/runs", list_runs, methods=["GET"]),
        Route(f"{API}/runs", submit_run, methods=["POST"]),
        Route(f"{API}/runs/{{run_id}}", get_run),
        Route(f"{API}/runs/{{run_id}}/output", run_output),
        Route(f"{API}/runs/{{run_id}}/cancel", cancel_run, methods=["POST"]),
        Route(f"{API}/runs/{{run_id}}/resume", resume_run, methods=["POST"]),
        Route(f"{API}/runs/{{run_id}}/manifest", run_manifest),
        Route(f"{API}/runs/{{run_id}}/files/{{path:path}}", run_file),
        Route(f"{API}/uploads/{{run_id}}", upload_begin, methods=["POST"]),
        Route(f"{API}/uploads/{{run_id}}/files/{{path:path}}", upload_file, methods=["PUT"]),
        Route(f"{API}/uploads/{{run_id}}/commit", upload_commit, methods=["POST"]),
        Route(f"{API}/query", query, methods=["POST"]),
        Route("/healthz", lambda request: PlainTextResponse("ok")),
        Route("/login", login_page, methods=["GET", "POST"]),
    ]
    api = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: _errors})
    api.state.store = store
    dashboards = Dashboards(store, dashboard) if dashboard is not None else None

    def ours(path: str) -> bool:
        return path.startswith(API + "/") or path in ("/healthz", "/login")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == GATEWAY_PREFIX
                                        or path.startswith(GATEWAY_PREFIX + "/")):
            await gateway(scope, receive, send)
        elif scope["type"] == "http" and dashboards is not None and not ours(path):
            await dashboards(scope, receive, send)
        else:
            await api(scope, receive, send)

    return app
