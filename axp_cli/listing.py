"""`axp list` and `axp runs list`."""

from __future__ import annotations

import argparse
import json

from pytest_axp.render.table import render

from .common import _runs_dir
from .errors import EXIT_OK
from .query_cmds import no_runs


def cmd_list(args: argparse.Namespace) -> int:
    if args.remote:
        from .remote import cmd_remote_list

        return cmd_remote_list(args)
    from pytest_axp.runs import list_runs

    rows = list_runs(_runs_dir(args), status=args.status)
    if args.json:
        print(json.dumps([r.to_json() for r in rows], indent=2))
    if not rows:
        raise no_runs(_runs_dir(args), f"{args.status} runs" if args.status else "runs")
    if args.json:
        return EXIT_OK
    print(render(("run id", "experiment", "status", "type", "created"),
                 [(r.run_id, r.experiment_id, r.status, "local", r.to_json()["created"])
                  for r in rows]))
    return EXIT_OK


def cmd_runs_list(args: argparse.Namespace) -> int:
    """`axp runs list`: the server's runs when signed in (as the seeds say), else the local
    ones; `axp list` stays local unless asked for --remote."""
    from .client import load_sign_in

    if args.local or (not args.remote and load_sign_in() is None):
        return cmd_list(args)
    from .remote import cmd_remote_list

    return cmd_remote_list(args)
