"""What a person sees on a terminal at the end of `axp local run` (driven through a pty)."""

from __future__ import annotations

import re
import sys
import time

import pexpect

TWO = """
schema_version: 2
id: two
name: Two
agents: [{name: command, script: "echo hi > out.txt"}]
prompts: [{id: one, prompt: go}]
extensions:
  - id: good
  - id: bad
    agents: [{name: command, script: "true"}]
tests:
  application:
    - name: out
      script: test -f out.txt
limits: {max_time_seconds: 60}
"""

SLOW = """
schema_version: 2
id: slow
name: Slow
agents: [{name: command, script: "sleep 300"}]
prompts: [go]
tests:
  application:
    - name: never
      script: "true"
limits: {max_time_seconds: 600}
"""

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\r")


def _spawn(project, *args: str) -> pexpect.spawn:
    # The terminal's own width: COLUMNS (xdist workers set it) would override it.
    env = {k: v for k, v in project.env().items() if k not in ("COLUMNS", "LINES")}
    return pexpect.spawn(sys.executable, ["-m", "axp_cli", *args], cwd=str(project.root),
                         env=env, dimensions=(40, 100), encoding="utf-8", timeout=300)


def _screen_text(child: pexpect.spawn) -> str:
    child.expect(pexpect.EOF)
    child.close()
    return ANSI.sub("", child.before)


def test_run_on_a_terminal_ends_with_the_final_table(project):
    project.write("two.yaml", TWO)
    child = _spawn(project, "local", "run", "two.yaml", "-j", "2")
    out = _screen_text(child)
    assert child.exitstatus == 1, out
    run = project.only_run()
    lines = [line.rstrip() for line in out.splitlines() if line.strip()]
    table_part = out[out.rindex("variant  status"):]
    # The final table: a row per variant, the failure's whole reason (wrapped to the
    # terminal's 100 columns, never cut), the total, the folder.
    assert all(len(line) <= 100 for line in table_part.splitlines()[:-1]), table_part
    flat = " ".join(table_part.split())
    # Rows in the experiment file's order.
    assert re.search(r"good pass .* bad fail \d+\.\ds 0 0/0 \$0\.0000 failed test: "
                     r"application/out \(exit 1\) total:", flat), table_part
    assert re.search(r"^good\s+pass\s+\d+\.\ds\s+0\s+0/0\s+\$0\.0000$", out, re.MULTILINE), out
    assert re.search(r"^total: 2 variants: 1 pass, 1 fail; cost \$0\.0000; wall time "
                     r"\d+\.\ds$", out, re.MULTILINE), out
    assert lines[-1] == f"run folder: {run.root}", out
    # The run id is said once in the table's part of the screen: only in the folder line.
    assert table_part.count(run.run_id) == 1, out
    # None of pytest's own report reaches the screen.
    for noise in ("bringing up nodes", "SUBFAILED", "FAILED", "short test summary",
                  "[100%]", "passed", "axp runs", "====="):
        assert noise not in out, (noise, out)
    assert not [line for line in lines if re.fullmatch(r"[.uFEsx]+", line.strip())], out


def test_ctrl_c_on_a_terminal_says_one_line(project):
    project.write("slow.yaml", SLOW)
    child = _spawn(project, "local", "run", "slow.yaml")
    deadline = time.monotonic() + 240
    # Interrupt once the variant is under way (its results folder exists).
    while not any((r.root / "results" / "default").is_dir() for r in project.runs()):
        assert time.monotonic() < deadline, "the run never started"
        assert child.isalive(), ANSI.sub("", child.read_nonblocking(100000, timeout=1))
        time.sleep(0.2)
    child.sendintr()
    out = _screen_text(child)
    assert child.exitstatus == 130, out
    run = project.only_run()
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines[-1] == f"axp: interrupted; partial run kept in {run.root}", out
    assert out.count("axp: interrupted") == 1, out
    for noise in ("KeyboardInterrupt", "Traceback", "!!!!"):
        assert noise not in out, (noise, out)
