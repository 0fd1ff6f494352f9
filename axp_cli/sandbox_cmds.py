"""`axp sandbox clean`."""

from __future__ import annotations

import argparse
import sys

from pytest_axp.render.table import render

from .errors import EXIT_ENGINE, EXIT_OK, CliError


def cmd_sandbox_clean(args: argparse.Namespace) -> int:
    from docker.errors import DockerException

    from pytest_axp.sandbox.base import (
        LABEL_OWNER_PID,
        LABEL_RUN_ID,
        LABEL_VARIANT_ID,
        SandboxError,
    )
    from pytest_axp.sandbox.docker import orphaned_containers

    try:
        orphans = orphaned_containers()
    except (SandboxError, DockerException) as e:
        raise CliError(str(e), EXIT_ENGINE) from None
    if not orphans:
        print("no orphaned sandboxes")
        return EXIT_OK
    def row(c):
        labels = c.attrs.get("Labels") or {}
        name = (c.attrs.get("Names") or ["?"])[0].lstrip("/")
        return (c.short_id, name, labels.get(LABEL_RUN_ID, ""), labels.get(LABEL_VARIANT_ID, ""),
                labels.get(LABEL_OWNER_PID, ""), c.attrs.get("State", ""))

    print(render(("container", "name", "run", "variant", "owner pid", "state"),
                 [row(c) for c in orphans]))
    if not args.yes:
        print(f"\n{len(orphans)} sandbox(es) whose owner process is gone; "
              "remove them with: axp sandbox clean --yes")
        return EXIT_OK
    removed = 0
    for c in orphans:
        try:
            c.remove(force=True)
            removed += 1
        except DockerException as e:
            print(f"axp: could not remove {c.short_id}: {e}", file=sys.stderr)
    print(f"\nremoved {removed} sandbox(es)")
    return EXIT_OK if removed == len(orphans) else EXIT_ENGINE
