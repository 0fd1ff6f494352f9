"""Test logs: full output on disk, exactly the last 8 KB in the summary."""

from __future__ import annotations

import json


def test_tail_is_exact_and_full_log_is_kept(project):
    project.write(
        "loud.yaml",
        """
        schema_version: 2
        id: loud
        name: Loud test
        agents: [{name: command, script: "true"}]
        prompts: [go]
        tests:
          application:
            - name: loud
              script: |
                python3 -c "for i in range(5000): print(f'{i:05d}')"
                python3 -c "import sys; sys.stderr.write('e' * 10000 + 'END')"
                exit 4
        limits: {max_time_seconds: 30}
    """,
    )
    res = project.pytest("loud.yaml")
    assert res.returncode == 1
    run = project.only_run()
    expected_out = "".join(f"{i:05d}\n" for i in range(5000))
    expected_err = "e" * 10000 + "END"
    logs = run.results("default").root / "application"
    assert (logs / "loud.stdout.log").read_text() == expected_out
    assert (logs / "loud.stderr.log").read_text() == expected_err
    test = json.loads(run.results("default").run_summary.read_text())["tests"][0]
    assert test["exit_code"] == 4 and test["status"] == "fail"
    assert test["stdout_tail"] == expected_out[-8192:]
    assert test["stderr_tail"] == expected_err[-8192:]
