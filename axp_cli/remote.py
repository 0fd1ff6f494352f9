"""The platform commands, against a self-hosted `axp server`: auth, upload, download, query,
remote runs (`axp run`, `axp runs status|list|cancel|resume`)."""

from __future__ import annotations

import argparse
import getpass
import io
import json
import os
import shutil
import sys
import tarfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .client import (
    Client,
    SignIn,
    forget_sign_in,
    load_sign_in,
    require_sign_in,
    save_sign_in,
)
from .common import _load, _runs_dir, refuse
from .errors import EXIT_BUSY, EXIT_INTERRUPTED, EXIT_NOT_PASSED, EXIT_OK, CliError
from .query_cmds import add_row_format_options, print_rows
from .upload import upload_run

FINISHED = ("done", "cancelled", "interrupted")
POLL_SECONDS = 1.0


# -- auth ----------------------------------------------------------------------------------

def _read_secret(prompt: str) -> str:
    """From a prompt that does not echo, or the first line of standard input when that is
    not a terminal (a pipe, CI)."""
    if sys.stdin.isatty():
        value = getpass.getpass(prompt)
    else:
        value = sys.stdin.readline()
    return value.strip()


def cmd_auth_login(args: argparse.Namespace) -> int:
    server = args.server.rstrip("/")
    if not server.startswith(("http://", "https://")):
        raise CliError(f"--server {args.server}: give the server's URL (http://HOST:PORT)")
    token = _read_secret("axp token: ")
    if not token:
        raise CliError("no token given (paste the token `axp server user add` printed)")
    with Client(SignIn(server, token)) as client:
        me = client.request("GET", "/whoami")
    path = save_sign_in(SignIn(server, token))
    print(f"signed in to {server} as {me['user']} (organisation {me['org']}); "
          f"token kept in {path}")
    return EXIT_OK


def cmd_auth_logout(args: argparse.Namespace) -> int:
    print("signed out" if forget_sign_in() else "not signed in")
    return EXIT_OK


def cmd_auth_status(args: argparse.Namespace) -> int:
    found = load_sign_in()
    if found is None:
        print("not signed in (axp auth login --server URL)")
        return EXIT_NOT_PASSED
    with Client(found) as client:
        me = client.request("GET", "/whoami")
    usage = me.get("model_usage", {})
    print(f"signed in to {found.server} as {me['user']} (organisation {me['org']})")
    print(f"managed model access: {usage.get('calls', 0)} call(s), "
          f"{usage.get('input_tokens', 0)} tokens in, {usage.get('output_tokens', 0)} out, "
          f"${usage.get('cost_usd', 0.0):.4f}")
    return EXIT_OK


# -- upload --------------------------------------------------------------------------------


def cmd_upload(args: argparse.Namespace) -> int:
    from pytest_axp.server.manifest import ManifestError, check_run_id

    sign_in = require_sign_in()
    runs_dir = _runs_dir(args)
    try:
        check_run_id(args.run_id)
    except ManifestError as e:
        raise CliError(str(e)) from None
    folder = runs_dir / args.run_id
    if not folder.is_dir():
        raise CliError(f"no run {args.run_id} under {runs_dir}", EXIT_NOT_PASSED)
    from pytest_axp.runlock import RunBusy, acquire, release
    from pytest_axp.runs import split_run_id

    ulid = split_run_id(args.run_id)[1]
    if ulid:  # a run still being written is uploaded when it has ended, not half-way
        try:
            acquire(runs_dir, ulid, args.run_id)
        except RunBusy as e:
            raise CliError(str(e), EXIT_BUSY) from None
    try:
        with Client(sign_in) as client:
            already, sent = upload_run(client, folder)
    finally:
        if ulid:
            release(runs_dir, ulid)
    print(f"run {args.run_id}: " + ("already uploaded, unchanged" if already else
                                    f"uploaded ({sent} file(s) sent) to {sign_in.server}"))
    return EXIT_OK


# -- download ------------------------------------------------------------------------------

def cmd_download(args: argparse.Namespace) -> int:
    from pytest_axp.server import manifest as M

    sign_in = require_sign_in()
    try:
        M.check_run_id(args.run_id)
    except M.ManifestError as e:
        raise CliError(str(e)) from None
    downloads = Path.cwd() / ".axp" / "downloads"
    dest = downloads / args.run_id
    part = downloads / f".{args.run_id}.part-{os.getpid()}"
    with Client(sign_in) as client:
        found = M.validate(client.request("GET", f"/runs/{args.run_id}/manifest"))
        shutil.rmtree(part, ignore_errors=True)
        try:
            for rel, entry in found["files"].items():
                target = part / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with client.stream("GET", f"/runs/{args.run_id}/files/{quote(rel)}") as resp:
                    if resp.status_code >= 400:
                        raise CliError(f"{rel}: the server answered HTTP {resp.status_code}")
                    with open(target, "wb") as f:
                        for chunk in resp.iter_bytes():
                            f.write(chunk)
                if M.file_sha256(target) != entry["sha256"]:
                    raise CliError(f"{rel}: downloaded bytes differ from the server's manifest")
            for rel, link in found["links"].items():
                target = part / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(link, target)
            # Whole or not at all: the finished copy replaces an earlier one in one step.
            old = downloads / f".{args.run_id}.old-{os.getpid()}"
            if dest.exists():
                os.replace(dest, old)
            os.replace(part, dest)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(part, ignore_errors=True)
    print(f"run {args.run_id}: {len(found['files'])} file(s) in {dest}")
    return EXIT_OK


# -- query ---------------------------------------------------------------------------------

def cmd_remote_query(args: argparse.Namespace) -> int:
    sign_in = require_sign_in()
    with Client(sign_in, timeout=600.0) as client:
        answer = client.request("POST", "/query", json={"sql": args.sql})
    print_rows(answer["columns"], answer["rows"], args.format)
    return EXIT_OK


# -- remote runs ---------------------------------------------------------------------------

def _bundle(args: argparse.Namespace, variants: list[Any]) -> bytes:
    """A gzipped tar of request.json, the experiment file and every host file it stages,
    laid out so that the experiment's relative sources resolve on the server as here."""
    from pytest_axp.plan import source_problems
    from pytest_axp.staging import plan_entries

    from .run import _file_bindings

    bindings = _file_bindings(args, variants)
    refuse(source_problems(variants, bindings))
    exp_file = Path(args.file).resolve()
    exp_dir = exp_file.parent
    tree: list[Path] = []  # sources resolved as the experiment says: keep their places
    bound: list[tuple[str, Path, str]] = []  # --file bindings: (kind, path, name or dest)
    slot_paths = {name: path for kind, name, path in bindings if kind == "slot"}
    for entry in {id(f): f for v in variants for f in v.files}.values():
        if entry.name in slot_paths or not entry.source:
            continue
        for planned in plan_entries([entry], exp_dir):
            if planned.state != "OK":
                continue
            if os.path.isabs(os.path.expanduser(entry.source)):
                if entry.name:
                    bound.append(("slot", Path(str(planned.source)), entry.name))
                    continue
                raise CliError(f"{exp_file}: files: source {entry.source} is an absolute path "
                               "on this machine; a remote run cannot find it there: name the "
                               "entry and bind it with --file NAME=PATH")
            tree.append(Path(str(planned.source)))
    for kind, name_or_path, path_or_dest in bindings:
        if kind == "slot":
            bound.append(("slot", Path(path_or_dest), name_or_path))
        else:
            bound.append(("adhoc", Path(name_or_path), path_or_dest))
    root = Path(os.path.commonpath([exp_dir, *tree]))
    files: list[str] = []
    buf = io.BytesIO()

    def no_links(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        # Staging skips links too; `.git` never stages.
        if info.issym() or info.islnk() or Path(info.name).name == ".git":
            return None
        return info

    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        added: set[str] = set()

        def add(path: Path, arcname: str) -> None:
            if arcname not in added:
                added.add(arcname)
                tar.add(path, arcname=arcname, filter=no_links)

        exp_arc = "tree/" + exp_file.relative_to(root).as_posix()
        add(exp_file, exp_arc)
        for path in tree:
            add(path, "tree/" + path.relative_to(root).as_posix())
        for n, (kind, path, what) in enumerate(bound):
            arc = f"bound/{n}/{path.name}"
            add(path, arc)
            files.append(f"{what}={arc}" if kind == "slot" else f"{arc}::{what}")
        request = {"experiment": exp_arc, "variants": args.variant, "repeat": args.repeat,
                   "files": files}
        data = json.dumps(request).encode()
        info = tarfile.TarInfo("request.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def cmd_remote_run(args: argparse.Namespace) -> int:
    from .run import _select

    if args.repeat < 1:
        raise CliError("--repeat must be at least 1")
    sign_in = require_sign_in()
    variants = _select(_load(args.file), args.variant)
    body = _bundle(args, variants)
    with Client(sign_in, timeout=600.0) as client:
        answer = client.request("POST", "/runs", content=body,
                                headers={"content-type": "application/gzip"})
        run_ids = answer["run_ids"]
        for run_id in run_ids:
            print(f"run {run_id}", flush=True)
        if args.detach:
            print(f"detached; follow with: axp runs status {run_ids[0]} --watch")
            return EXIT_OK
        worst = EXIT_OK
        for run_id in run_ids:
            code = _watch(client, run_id)
            if code == EXIT_INTERRUPTED:
                return code
            worst = max(worst, code)
        return worst


def _watch(client: Client, run_id: str) -> int:
    """The run's output as the server writes it, until it ends; Ctrl-C detaches (the run goes
    on). Exit 0 when it passed, 1 otherwise."""
    offset = 0
    out = sys.stdout.buffer
    try:
        while True:
            resp = client.request("GET", f"/runs/{run_id}/output", params={"offset": offset},
                                  raw=True)
            if resp.content:
                out.write(resp.content)
                out.flush()
            offset = int(resp.headers.get("x-axp-next-offset", offset))
            if resp.headers.get("x-axp-state") in FINISHED and not resp.content:
                break
            if not resp.content:
                time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        print(f"\ndetached from run {run_id}; it goes on. Re-attach: axp runs status {run_id} "
              "--watch; stop it: axp runs cancel " + run_id, file=sys.stderr)
        return EXIT_INTERRUPTED
    row = client.request("GET", f"/runs/{run_id}")
    _print_status(row)
    return EXIT_OK if row["state"] == "done" and row["status"] == "pass" else EXIT_NOT_PASSED


def _print_status(row: dict[str, Any]) -> None:
    state = row["state"] if row["state"] != "done" else (row["status"] or "done")
    extra = f" ({row['message']})" if row.get("message") else ""
    print(f"run {row['run_id']}: {state}{extra}")
    for vid, status in sorted((row.get("variants") or {}).items()):
        print(f"  {vid}: {status or 'running'}")


def cmd_runs_status(args: argparse.Namespace) -> int:
    sign_in = require_sign_in()
    with Client(sign_in) as client:
        if args.watch:
            return _watch(client, args.run_id)
        row = client.request("GET", f"/runs/{args.run_id}")
    _print_status(row)
    return EXIT_OK


def cmd_runs_cancel(args: argparse.Namespace) -> int:
    sign_in = require_sign_in()
    with Client(sign_in) as client:
        answer = client.request("POST", f"/runs/{args.run_id}/cancel")
    note = f" ({answer['note']})" if answer.get("note") else ""
    print(f"run {args.run_id}: {answer['state']}{note}")
    return EXIT_OK


def cmd_runs_resume(args: argparse.Namespace) -> int:
    sign_in = require_sign_in()
    with Client(sign_in) as client:
        client.request("POST", f"/runs/{args.run_id}/resume")
        print(f"run {args.run_id}: queued again (the variants with no result run)")
        if args.watch:
            return _watch(client, args.run_id)
    return EXIT_OK


def cmd_remote_list(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from pytest_axp.render.table import render

    sign_in = require_sign_in()
    with Client(sign_in) as client:
        rows = client.request("GET", "/runs")
    for row in rows:
        row["created"] = datetime.fromtimestamp(row["created_at"], UTC).isoformat(
            timespec="seconds").replace("+00:00", "Z")
        row["shown_status"] = (row["status"] or row["state"]) if row["state"] == "done" \
            else row["state"]
    if args.status:
        rows = [r for r in rows if r["shown_status"] == args.status]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print(f"no runs on {sign_in.server}")
        return EXIT_NOT_PASSED
    print(render(("run id", "experiment", "status", "type", "created", "by"),
                 [(r["run_id"], r["experiment_id"], r["shown_status"],
                   "remote" if r["kind"] == "remote" else "uploaded", r["created"], r["user"])
                  for r in rows]))
    return EXIT_OK


# -- parser --------------------------------------------------------------------------------

def register(sub: argparse._SubParsersAction, runs_sub: argparse._SubParsersAction) -> None:
    auth = sub.add_parser("auth", help="sign in to an axp server").add_subparsers(
        dest="auth_cmd", required=True)
    login = auth.add_parser("login", help="sign in with a token (read from a prompt, or "
                                          "from standard input when it is not a terminal)")
    login.add_argument("--server", required=True, metavar="URL",
                       help="the server's URL, e.g. http://127.0.0.1:8787")
    login.set_defaults(func=cmd_auth_login)
    auth.add_parser("logout", help="forget the token").set_defaults(func=cmd_auth_logout)
    auth.add_parser("status", help="who is signed in, where").set_defaults(
        func=cmd_auth_status)

    from .common import RUNS_DIR_HELP

    up = sub.add_parser("upload", help="upload a local run to the server")
    up.add_argument("run_id", metavar="RUN_ID", help="a run under the runs folder")
    up.add_argument("--runs-dir", default=None, metavar="DIR", help=RUNS_DIR_HELP)
    up.set_defaults(func=cmd_upload)
    down = sub.add_parser("download", help="fetch a run from the server into "
                                           "./.axp/downloads/RUN_ID/")
    down.add_argument("run_id", metavar="RUN_ID", help="a run on the server")
    down.set_defaults(func=cmd_download)
    q = sub.add_parser("query", help="SQL over the organisation's runs on the server "
                                     "(the tables of `axp local query`)")
    q.add_argument("sql", metavar="SQL", help="one DuckDB SQL statement")
    add_row_format_options(q)
    q.set_defaults(func=cmd_remote_query)

    run = sub.add_parser("run", help="run an experiment on the server")
    run.add_argument("file", metavar="FILE", help="experiment file")
    run.add_argument("--variant", action="append", default=[], metavar="ID",
                     help="run only this variant (repeatable)")
    run.add_argument("--repeat", type=int, default=1, metavar="N",
                     help="N runs of every variant (default 1)")
    run.add_argument("--file", action="append", default=[], dest="files",
                     metavar="NAME=PATH|SRC::DEST",
                     help="bind a file slot or replace a named source; or stage SRC at DEST")
    run.add_argument("--detach", action="store_true",
                     help="print the run id and return; follow with `axp runs status`")
    run.set_defaults(func=cmd_remote_run)

    st = runs_sub.add_parser("status", help="a run on the server")
    st.add_argument("run_id", metavar="RUN_ID", help="the id `axp run` printed")
    st.add_argument("--watch", action="store_true", help="stream its output until it ends")
    st.set_defaults(func=cmd_runs_status)
    ca = runs_sub.add_parser("cancel", help="cancel a run on the server")
    ca.add_argument("run_id", metavar="RUN_ID", help="a queued or running remote run")
    ca.set_defaults(func=cmd_runs_cancel)
    re_ = runs_sub.add_parser("resume", help="run again what an interrupted run is missing")
    re_.add_argument("run_id", metavar="RUN_ID", help="an interrupted remote run")
    re_.add_argument("--watch", action="store_true", help="stream its output until it ends")
    re_.set_defaults(func=cmd_runs_resume)
