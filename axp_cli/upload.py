"""Uploading a run folder to the signed-in server: `axp upload`, and after `axp local run`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import quote

from .client import Client, load_sign_in
from .errors import CliError


def upload_run(client: Client, folder: Path) -> tuple[bool, int]:
    """Upload one run folder; (already there, files sent). The server lists it only once
    the final commit has checked every file."""
    from pytest_axp.server import manifest as M

    wanted = M.build(folder)
    run_id = folder.name
    answer = client.request("POST", f"/uploads/{run_id}", json=wanted)
    if answer.get("complete"):
        return True, 0
    for rel in answer["missing"]:
        with open(folder / rel, "rb") as f:
            client.request("PUT", f"/uploads/{run_id}/files/{quote(rel)}", content=f)
    client.request("POST", f"/uploads/{run_id}/commit")
    return False, len(answer["missing"])



def upload_after_local_run(run_ids: list[str], runs_dir: Path) -> None:
    """Best effort, when signed in: a failure is one warning line and the run stays local."""
    sign_in = load_sign_in()
    if sign_in is None or os.environ.get("AXP_NO_UPLOAD"):
        return
    for run_id in run_ids:
        folder = runs_dir / run_id
        if not folder.is_dir():
            continue
        try:
            with Client(sign_in, timeout=30.0) as client:
                upload_run(client, folder)
        except (CliError, OSError) as e:
            print(f"axp: warning: run {run_id} not uploaded ({e}); it stays in {folder}; "
                  f"`axp upload {run_id}` tries again", file=sys.stderr)
        else:
            print(f"uploaded run {run_id} to {sign_in.server}")
