"""`axp view`: the local web viewer over the run folders."""

from __future__ import annotations

import argparse
import os
import sys

from .common import RUNS_DIR_HELP, _runs_dir
from .errors import CliError


def cmd_view(args: argparse.Namespace) -> int:
    runs_dir = _runs_dir(args)
    missing = [r for r in args.run_ids if not (runs_dir / r).is_dir() or "/" in r]
    if missing:
        raise CliError(f"no run {', '.join(missing)} under {runs_dir}; the runs: axp list")
    if args.port is not None and not 0 <= args.port <= 65535:
        raise CliError(f"--port {args.port}: give a port number from 0 to 65535")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"axp view: serving on {args.host}: anyone who can reach it reads the runs "
              "(no login)", file=sys.stderr)
    from pytest_axp.view.server import serve

    def ready(url: str) -> None:
        print(f"axp view: {url} (runs in {runs_dir}; Ctrl-C stops)", flush=True)
        if not args.no_browser and _has_display():
            import webbrowser

            webbrowser.open(url)

    try:
        serve(runs_dir, list(args.run_ids), args.host, args.port, on_ready=ready)
    except OSError as e:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}; "
                       "choose another with --port N") from None
    except KeyboardInterrupt:
        pass
    return 0


def _has_display() -> bool:
    # Without a desktop, webbrowser may start a text browser in this terminal: not wanted.
    return sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def register(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser("view", help="browse runs, trajectories, diffs and comparisons "
                                    "in a local web viewer")
    v.add_argument("run_ids", nargs="*", metavar="RUN_ID",
                   help="only these runs on the front page (default: every run, new ones "
                        "as they start)")
    v.add_argument("--runs-dir", default=None, metavar="DIR", help=RUNS_DIR_HELP)
    v.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    v.add_argument("--port", type=int, default=None, metavar="N",
                   help="port (default 8765, or a free one if taken)")
    v.add_argument("--no-browser", action="store_true", help="do not open a browser")
    v.set_defaults(func=cmd_view)
