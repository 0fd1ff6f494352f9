"""The work queue's workers: threads that take queued remote runs from the database and run
each with the local engine (`axp local run` as a subprocess), writing the organisation's run
folders. The organisation's secrets reach the run as environment only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from ..runs import read_run
from ..secrets import Redactor
from .store import CANCELLED, DONE, INTERRUPTED, Store, bundle_of

POLL_SECONDS = 0.5
OUTPUT = "output.log"


def _load_libc() -> Any:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


# Loaded before any fork: the child may only make the one call below.
_LIBC = _load_libc()


def _die_with_parent() -> None:
    """In the child: SIGTERM when the server dies, so a killed server leaves no run going on
    that nobody tracks (the run stops cleanly and is marked interrupted at restart)."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def local_run_argv(request: dict[str, Any], bundle: Path, runs_dir: Path, run_id: str,
                   resume: bool) -> list[str]:
    """The `axp local run` command line of one queued run (pure: tested without a server)."""
    experiment = str(bundle / request["experiment"])
    argv = [sys.executable, "-m", "axp_cli", "local", "run", experiment,
            "--runs-dir", str(runs_dir)]
    if resume:
        return [*argv, "--resume", run_id]
    argv += ["--run-ulid", run_id.rsplit("-", 1)[1]]
    for vid in request.get("variants", []):
        argv += ["--variant", vid]
    for item in request.get("files", []):
        name, sep, rel = item.partition("=")
        if sep and "::" not in item:
            argv += ["--file", f"{name}={bundle / rel}"]
        else:
            src, _, dest = item.partition("::")
            argv += ["--file", f"{bundle / src}::{dest}"]
    if request.get("jobs"):
        argv += ["--jobs", str(int(request["jobs"]))]
    return argv


def run_environment(secrets: dict[str, str]) -> dict[str, str]:
    """The server's environment without any model key of its own, plus the organisation's
    secrets (its ANTHROPIC_API_KEY among them, for agents that need a model)."""
    from ..gateway.apis import REGISTRY

    env = dict(os.environ)
    for api in REGISTRY.all():
        env.pop(api.key_env, None)
        env.pop(api.base_url_env, None)
    env.update(secrets)
    env["AXP_NO_REAP"] = "1"  # other runs of this server share the engine
    return env


class Workers:
    def __init__(self, store: Store, count: int) -> None:
        self.store = store
        self.count = count
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._procs: dict[tuple[str, str], subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        for n in range(self.count):
            t = threading.Thread(target=self._loop, name=f"axp-worker-{n}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop taking work; runs under way are interrupted (their folders kept)."""
        self._stop.set()
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                row = self.store.claim_next()
            except Exception as e:  # the database went away for a moment: try again
                print(f"axp server: worker: {e}", file=sys.stderr)
                row = None
            if row is None:
                self._stop.wait(POLL_SECONDS)
                continue
            try:
                self._run(row)
            except Exception as e:
                print(f"axp server: run {row['run_id']}: {e}", file=sys.stderr)
                self.store.update_run(row["org"], row["run_id"], state=DONE, status="error",
                                      message=f"the server could not run it: {e}")
                self.store.release_bundles(str(row["org"]), [bundle_of(row["request"]) or ""])

    def _run(self, row: dict[str, Any]) -> None:
        org, run_id = str(row["org"]), str(row["run_id"])
        request = json.loads(row["request"])
        job_dir = self.store.jobs_dir(org) / run_id
        job_dir.mkdir(parents=True, exist_ok=True)
        bundle = self.store.org_dir(org) / "bundles" / request["bundle"]
        runs_dir = self.store.runs_dir(org)
        resume = bool(request.get("resume"))
        argv = local_run_argv(request, bundle, runs_dir, run_id, resume)
        secrets = self.store.secrets(org)
        redactor = Redactor(secrets.values())
        if resume:
            _wait_for_writer(runs_dir, run_id)
        with open(job_dir / OUTPUT, "ab") as out:
            if resume:
                out.write(b"\n== resumed\n")
            proc = subprocess.Popen(argv, cwd=job_dir, env=run_environment(secrets),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
                                    start_new_session=True)
            with self._lock:
                self._procs[(org, run_id)] = proc
            pump = threading.Thread(target=_pump, args=(proc.stdout, out, redactor), daemon=True)
            pump.start()
            cancelled = False
            while proc.poll() is None:
                if not cancelled and self._cancel_requested(org, run_id):
                    cancelled = True
                    proc.send_signal(signal.SIGINT)
                time.sleep(POLL_SECONDS)
            pump.join(30)
            with self._lock:
                self._procs.pop((org, run_id), None)
        folder = runs_dir / run_id
        status = read_run(folder).status if folder.is_dir() else "error"
        if cancelled:
            state, message = CANCELLED, "cancelled"
        elif self._stop.is_set() and proc.returncode == 130:
            state, message = INTERRUPTED, ("the server stopped during the run; "
                                           "`axp runs resume ID` runs what is missing")
        else:
            state, message = DONE, None
        self.store.update_run(org, run_id, state=state, status=status,
                              exit_code=proc.returncode, message=message)
        # Only an interrupted run can run again: what was sent for it is kept for its resume.
        self.store.release_bundles(org, [request["bundle"]])

    def _cancel_requested(self, org: str, run_id: str) -> bool:
        row = self.store.run(org, run_id)
        return bool(row and row["cancel_requested"])


def _wait_for_writer(runs_dir: Path, run_id: str, seconds: float = 300.0) -> None:
    """The process of a server that died may still be cleaning up the run it wrote (it was
    told to stop when the server died): resuming waits until it has let go of the run."""
    from ..runlock import RunBusy, acquire, release

    ulid = run_id.rsplit("-", 1)[1]
    deadline = time.monotonic() + seconds
    while True:
        try:
            acquire(runs_dir, ulid, run_id)
        except RunBusy:
            if time.monotonic() > deadline:
                return  # the run says it is busy, in its own words
            time.sleep(POLL_SECONDS)
            continue
        release(runs_dir, ulid)
        return


def _pump(src: IO[bytes] | None, out: IO[bytes], redactor: Redactor) -> None:
    """The run's output to its log as it comes, with the organisation's secrets masked."""
    if src is None:
        return
    for line in iter(src.readline, b""):
        out.write(redactor.bytes(line) if redactor else line)
        out.flush()
