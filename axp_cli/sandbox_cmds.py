"""`axp sandbox clean`."""

from __future__ import annotations

import argparse
import sys

from pytest_axp.render.table import render

from .errors import EXIT_ENGINE, EXIT_OK, CliError


def cmd_sandbox_clean(args: argparse.Namespace) -> int:
    from pytest_axp.sandbox import builtin_backend
    from pytest_axp.sandbox.base import (
        LABEL_OWNER_PID,
        LABEL_RUN_ID,
        LABEL_VARIANT_ID,
        SandboxError,
    )
    from pytest_axp.sandbox.pool import configure

    try:
        configure(args.docker_hosts)
    except ValueError as e:
        raise CliError(f"--docker-host: {e}") from None
    try:
        backend = builtin_backend()
        orphans = backend.orphans()
    except SandboxError as e:
        raise CliError(str(e), EXIT_ENGINE) from None
    if not orphans:
        print("no orphaned sandboxes")
        return EXIT_OK

    pooled = any("axp.engine" in c.labels for c in orphans)

    engine = ["engine"] if pooled else []  # the column only when there is a pool

    def row(c):
        return (c.id[:12], *([c.labels["axp.engine"]] if pooled else []), c.name,
                c.labels.get(LABEL_RUN_ID, ""), c.labels.get(LABEL_VARIANT_ID, ""),
                c.labels.get(LABEL_OWNER_PID, ""), c.state)

    print(render(("container", *engine, "name", "run", "variant", "owner pid", "state"),
                 [row(c) for c in orphans]))
    if not args.yes:
        print(f"\n{len(orphans)} sandbox(es) whose owner process is gone; "
              "remove them with: axp sandbox clean --yes")
        return EXIT_OK
    removed = 0
    for c in orphans:
        try:
            backend.remove_sandbox(c.id)
            removed += 1
        except SandboxError as e:
            print(f"axp: {e}", file=sys.stderr)
    print(f"\nremoved {removed} sandbox(es)")
    return EXIT_OK if removed == len(orphans) else EXIT_ENGINE
