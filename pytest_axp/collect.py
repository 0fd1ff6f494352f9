"""Collection: an experiment YAML is a pytest File, each (variant x repeat) a Function."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .session import SESSION_KEY

if TYPE_CHECKING:
    from _pytest._code.code import TerminalRepr

    from .experiment import ResolvedVariant
    from .record.layout import RunPaths
    from .runner import VariantRun


@dataclass(frozen=True)
class VariantItemSpec:
    variant: ResolvedVariant
    repeat: int
    run: RunPaths


SPEC_KEY = pytest.StashKey[VariantItemSpec]()


class ExperimentFile(pytest.File):
    def collect(self) -> Iterator[VariantItem]:
        from .experiment import load_and_resolve

        axp = self.config.stash[SESSION_KEY]
        variants = load_and_resolve(self.path)
        if axp.variant_filter:
            # A filter naming no variant of this file leaves it without items; the CLI
            # checks the ids up front and names the unknown ones.
            variants = [v for v in variants if v.id in axp.variant_filter]
        for repeat in range(1, axp.repeat + 1):
            for variant in variants:
                name = variant.id if axp.repeat == 1 else f"{variant.id}.repeat-{repeat}"
                item = VariantItem.from_parent(self, name=name, callobj=run_variant_item)
                item.stash[SPEC_KEY] = VariantItemSpec(
                    variant=variant, repeat=repeat,
                    run=axp.run_paths(variant.experiment_id, repeat))
                item.add_marker(pytest.mark.axp)
                for tag in variant.tags:
                    item.extra_keyword_matches.add(tag)
                yield item

    def repr_failure(  # type: ignore[override]  # pytest's Collector takes no style
            self, excinfo: pytest.ExceptionInfo[BaseException]) -> str | TerminalRepr:
        from .experiment import ExperimentError

        if isinstance(excinfo.value, ExperimentError):
            return "\n".join(str(p) for p in excinfo.value.problems)
        return super().repr_failure(excinfo)


class VariantItem(pytest.Function):
    """One variant run. Reported under its node id (`exp.yaml::variant`): a Function's own
    header is the dotted path of its parents, meaningless for an item of a YAML file."""

    def reportinfo(self) -> tuple[Path, None, str]:
        return self.path, None, self.nodeid


class AxpNoTestsWarning(UserWarning):
    """An experiment variant with no tests: its status says only how the agent exited."""


def run_variant_item(_axp_variant_run: VariantRun, request: pytest.FixtureRequest) -> None:
    """The body of every variant item: agent, tests, verdict, in one report.

    The tests are not subtests: a subtest report counts as a test of its own in `-x`,
    `--maxfail` and JUnit's totals, while the unit a user selects, re-runs (`--lf`) and
    resumes is the variant. Each test's outcome is a user property; the failure message
    names every failed test.
    """
    from .record.summary import Failure
    from .runner import VariantFailed
    from .sandbox.base import SandboxError

    run = _axp_variant_run
    node = request.node
    try:
        run.run_agent()
        for kind, test in run.planned_tests():
            result = run.run_test(kind, test)
            node.user_properties.append((f"axp.test.{kind}/{test.name}", result.status))
        status = run.complete()
    except VariantFailed:
        # An infrastructure error after the agent started: the runner recorded it.
        status = "error"
    except SandboxError as e:
        # The sandbox went away under the run (engine restarted, container removed): not
        # the agent's doing. The summary is written at teardown, as for any error.
        run.outcome.failure = Failure(
            phase="sandbox", name=run.backend.name if run.backend else "sandbox",
            infrastructure=True,
            message=f"the sandbox failed mid-run: {_one_line(e)}")
        status = "error"
    node.user_properties.append(("axp.status", status))
    for note in run.outcome.notes:
        node.user_properties.append(("axp.note", note))
        path, line = _tests_line(run.variant.source_file)
        # Shown against the experiment file, not this module.
        warnings.warn_explicit(AxpNoTestsWarning(f"{run.variant.id}: {note}"),
                               AxpNoTestsWarning, filename=path, lineno=line)
    if status != "pass":
        pytest.fail(_verdict_message(run, status), pytrace=False)


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


def _tests_line(source_file: str) -> tuple[str, int]:
    """The experiment file and the line of its top-level `tests:` key (1 if none)."""
    try:
        with open(source_file, encoding="utf-8", errors="replace") as f:
            for number, text in enumerate(f, 1):
                if text.startswith("tests:"):
                    return source_file, number
    except OSError:
        pass
    return source_file, 1


def _verdict_message(run: VariantRun, status: str) -> str:
    """First line: the verdict, naming every failed test (JUnit's message); then tails."""
    from .record.summary import tail

    vid = run.variant.id
    outcome = run.outcome
    if outcome.failure is not None:
        return f"{vid}: error: {outcome.failure.one_line()}"
    if status == "timeout":
        return (f"{vid}: timeout: the agent exceeded max_time_seconds="
                f"{run.variant.limits.max_time_seconds}; tests were not run")
    if status == "fail":
        failed = [t for t in outcome.tests if t.status != "pass"]
        lines = [f"{vid}: fail: {', '.join(f'{t.kind}/{t.name}' for t in failed)}"]
        for t in failed:
            why = t.reason or f"exit {t.exit_code}"
            lines.append(f"{vid}: {t.kind} test '{t.name}' failed ({why})")
            for label, path in (("stdout", t.stdout_log), ("stderr", t.stderr_log)):
                text = tail(path, 1024).rstrip()
                if text:
                    lines.append(f"--- {t.kind}/{t.name} {label} (tail) ---\n{text}")
        return "\n".join(lines)
    agent = outcome.agent
    code = agent.exit_code if agent else None
    return f"{vid}: error: the agent exited {code} and no tests ran"


# pytest's default norecursedirs, less the dot rule checked apart.
_SKIPPED_DIRS = {"build", "dist", "node_modules", "venv", "CVS", "_darcs", "{arch}"}


def experiment_files(folder: Path) -> list[Path]:
    """The experiment files pytest would collect under `folder`, in path order."""
    from .experiment import sniff_experiment

    found = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).parts
        if any(p.startswith(".") or p in _SKIPPED_DIRS or p.endswith(".egg")
               for p in rel[:-1]) or rel[-1].startswith("."):
            continue
        if path.suffix in (".yaml", ".yml") and path.is_file() and sniff_experiment(path):
            found.append(path)
    return found
