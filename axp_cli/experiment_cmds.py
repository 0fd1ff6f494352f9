"""`axp experiment validate|resolve|schema`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pytest_axp.render.table import render

from .common import _check_agents, _load
from .errors import EXIT_INVALID, EXIT_OK, CliError


def cmd_validate(args: argparse.Namespace) -> int:
    from pytest_axp.experiment import ExperimentError, load_and_resolve

    try:
        variants = load_and_resolve(args.file)
    except ExperimentError as e:
        for p in e.problems:
            print(p, file=sys.stderr)
        return EXIT_INVALID
    except OSError as e:
        raise CliError(f"{args.file}: {e.strerror}") from None
    from pytest_axp.plan import source_problems

    problems = source_problems(variants, slots_bound_later=True)  # slots bound at run time
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return EXIT_INVALID
    try:
        _check_agents(variants)
    except CliError as e:
        print(e, file=sys.stderr)
        return EXIT_INVALID
    from pytest_axp.runner import has_tests

    untested = [v.id for v in variants if not has_tests(v)]
    if untested:
        print(f"{args.file}: warning: no tests: variant(s) {', '.join(untested)} declare no "
              "application or introspection test; their status will reflect the agent's "
              "exit only", file=sys.stderr)
    print(f"{args.file}: valid ({len(variants)} variant(s))")
    # Secret values come at run time, so a missing one is not a fault of the file.
    from pytest_axp.plan import PlanError, unset_secrets

    try:
        unset = unset_secrets(variants, Path.cwd())
    except PlanError as e:
        raise CliError(str(e)) from None
    if unset:
        print(f"note: no value here for secret(s) {', '.join(unset)}: a run needs them "
              "(environment, ./.env, --env-file or --env)")
    return EXIT_OK


def cmd_resolve(args: argparse.Namespace) -> int:
    variants = _load(args.file)
    if args.json:
        print(json.dumps([v.model_dump(mode="json", exclude_none=True) for v in variants],
                         indent=2))
        return EXIT_OK
    print(render(("variant", "tags", "agent", "model", "prompt", "environment", "product",
                  "fingerprint"),
                 [(v.id, ",".join(v.tags) or v.tag, v.agent.name, v.matrix.get("model", ""),
                   v.prompt.id, v.matrix.get("environment", ""), v.matrix.get("product", ""),
                   v.fingerprint[:12]) for v in variants]))
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from pytest_axp.experiment import experiment_json_schema

    print(json.dumps(experiment_json_schema(), indent=2))
    return EXIT_OK
