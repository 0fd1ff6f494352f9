"""`axp server`: run the team's server, add users, set the organisation's secrets."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import EXIT_ENGINE, EXIT_OK, CliError

DATA_DIR_ENV = "AXP_SERVER_DATA_DIR"
DEFAULT_DATA_DIR = ".axp/server"


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).resolve()


def _store(args: argparse.Namespace):
    from pytest_axp.server.db import Database, DatabaseError
    from pytest_axp.server.store import Store

    data_dir = _data_dir(args)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        return Store(Database.open(data_dir, args.database_url), data_dir)
    except DatabaseError as e:
        raise CliError(str(e)) from None


def cmd_server(args: argparse.Namespace) -> int:
    if args.server_cmd is not None:  # argparse sends subcommands to their own functions
        raise CliError("unknown server command")
    if args.workers < 0:
        raise CliError("--workers must be 0 or more")
    if not 1 <= args.port <= 65535:
        raise CliError(f"--port {args.port}: give a port from 1 to 65535")
    import uvicorn

    from pytest_axp.server.app import create_app
    from pytest_axp.server.db import DatabaseError

    data_dir = _data_dir(args)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        app = create_app(data_dir, args.database_url, workers=args.workers,
                         dashboard=_viewer_factory())
    except DatabaseError as e:
        raise CliError(str(e)) from None
    print(f"axp server: http://{args.host}:{args.port} (data in {data_dir})", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print("axp server: plain HTTP beyond this machine: tokens cross the network in the "
              "clear unless a TLS proxy stands in front", flush=True)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                            lifespan="on")
    server = uvicorn.Server(config)
    # uvicorn handles SIGINT/SIGTERM itself (a clean stop marks runs under way interrupted).
    import signal

    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        server.run()
    except OSError as e:
        raise CliError(f"cannot serve on {args.host}:{args.port}: {e.strerror or e}",
                       EXIT_ENGINE) from None
    return EXIT_OK


def _viewer_factory():
    """The viewer's app factory (`axp view`), served as the dashboard when installed."""
    import importlib

    try:
        module = importlib.import_module("pytest_axp.view.app")
    except ImportError:
        return None
    return getattr(module, "create_app", None)


def cmd_user_add(args: argparse.Namespace) -> int:
    from pytest_axp.server.store import StoreError

    store = _store(args)
    try:
        token = store.add_user(args.name, args.org)
    except StoreError as e:
        raise CliError(str(e)) from None
    finally:
        store.db.close()
    print(f"user {args.name} added to organisation {args.org}; their token (shown once, "
          "give it to `axp auth login`):", file=sys.stderr)
    print(token)
    return EXIT_OK


def cmd_secret_set(args: argparse.Namespace) -> int:
    from pytest_axp.server.store import StoreError

    from .remote import _read_secret

    value = _read_secret(f"value of {args.name}: ")
    if not value:
        raise CliError(f"no value given for {args.name}")
    store = _store(args)
    try:
        store.set_secret(args.org, args.name, value)
    except StoreError as e:
        raise CliError(str(e)) from None
    finally:
        store.db.close()
    print(f"secret {args.name} set for organisation {args.org}")
    return EXIT_OK


def cmd_usage(args: argparse.Namespace) -> int:
    from pytest_axp.render.table import render

    store = _store(args)
    try:
        rows = store.usage_by_user(args.org)
    finally:
        store.db.close()
    print(render(("organisation", "user", "calls", "tokens in", "tokens out", "cost"),
                 [(r["org"], r["user"], r["calls"], r["input_tokens"], r["output_tokens"],
                   f"${r['cost_usd']:.4f}") for r in rows]))
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--data-dir", default=None, metavar="DIR",
                            help=f"the server's files (default: ${DATA_DIR_ENV} or "
                                 f"./{DEFAULT_DATA_DIR})")
        parser.add_argument("--database-url", default=None, metavar="URL",
                            help="postgresql://USER:PASSWORD@HOST/DB (default: SQLite in "
                                 "the data folder)")

    srv = sub.add_parser("server", help="run an axp server for a team (API, work queue, "
                                        "managed model access)")
    common(srv)
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    srv.add_argument("--port", type=int, default=8787, help="port (8787)")
    srv.add_argument("--workers", type=int, default=2, metavar="N",
                     help="remote runs at the same time (2)")
    srv.set_defaults(func=cmd_server)
    srv_sub = srv.add_subparsers(dest="server_cmd")
    user = srv_sub.add_parser("user", help="accounts").add_subparsers(dest="user_cmd",
                                                                      required=True)
    add = user.add_parser("add", help="add a user; prints their token once")
    add.add_argument("name", metavar="NAME", help="the user's name (letters, digits, . _ -)")
    add.add_argument("--org", default="default", help="their organisation (default: default)")
    common(add)
    add.set_defaults(func=cmd_user_add)
    secret = srv_sub.add_parser("secret", help="the organisation's secrets").add_subparsers(
        dest="secret_cmd", required=True)
    sset = secret.add_parser("set", help="set a secret (value from a prompt or stdin); "
                                         "remote runs get it as environment")
    sset.add_argument("name", metavar="NAME", help="an environment variable name")
    sset.add_argument("--org", default="default", help="the organisation (default: default)")
    common(sset)
    sset.set_defaults(func=cmd_secret_set)
    usage = srv_sub.add_parser("usage", help="managed model access, per user")
    usage.add_argument("--org", default=None, help="one organisation (default: all)")
    common(usage)
    usage.set_defaults(func=cmd_usage)
