"""Collection: an experiment YAML is a pytest File, each (variant x repeat) a Function."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from .session import SESSION_KEY

if TYPE_CHECKING:
    from .experiment import ResolvedVariant
    from .record.layout import RunPaths


@dataclass(frozen=True)
class VariantItemSpec:
    variant: "ResolvedVariant"
    repeat: int
    run: "RunPaths"


SPEC_KEY = pytest.StashKey[VariantItemSpec]()


class ExperimentFile(pytest.File):
    def collect(self):
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
                item = pytest.Function.from_parent(self, name=name, callobj=run_variant_item)
                item.stash[SPEC_KEY] = VariantItemSpec(
                    variant=variant, repeat=repeat,
                    run=axp.run_paths(variant.experiment_id, repeat))
                item.add_marker(pytest.mark.axp)
                for tag in variant.tags:
                    item.extra_keyword_matches.add(tag)
                yield item

    def repr_failure(self, excinfo, style=None):
        from .experiment import ExperimentError

        if isinstance(excinfo.value, ExperimentError):
            return "\n".join(str(p) for p in excinfo.value.problems)
        return super().repr_failure(excinfo, style)


def run_variant_item(_axp_variant_run, subtests, request) -> None:
    """The body of every variant item: agent, then tests as subtests, then the verdict."""
    run = _axp_variant_run
    vid = run.variant.id
    run.run_agent()
    for kind, test in run.planned_tests():
        with subtests.test(msg=f"{vid} {kind}/{test.name}"):
            result = run.run_test(kind, test)
            if result.status != "pass":
                pytest.fail(_test_failure_message(vid, result), pytrace=False)
    status = run.complete()
    request.node.user_properties.append(("axp.status", status))
    if status != "pass":
        pytest.fail(_verdict_message(run, status), pytrace=False)


def _test_failure_message(vid: str, result) -> str:
    from .record.summary import tail

    lines = [f"{vid}: {result.kind} test '{result.name}' failed (exit {result.exit_code})"]
    for label, path in (("stdout", result.stdout_log), ("stderr", result.stderr_log)):
        text = tail(path, 1024).rstrip()
        if text:
            lines.append(f"--- {label} (tail) ---\n{text}")
    return "\n".join(lines)


def _verdict_message(run, status: str) -> str:
    vid = run.variant.id
    outcome = run.outcome
    if status == "timeout":
        return (f"{vid}: timeout: the agent exceeded max_time_seconds="
                f"{run.variant.limits.max_time_seconds}; tests were not run")
    if status == "fail":
        failed = [f"{t.kind}/{t.name}" for t in outcome.tests if t.status != "pass"]
        return f"{vid}: fail: {', '.join(failed)}"
    if outcome.failure is not None:  # e.g. the model API failed the agent (after retries)
        return f"{vid}: error: {outcome.failure.one_line()}"
    agent = outcome.agent
    code = agent.exit_code if agent else None
    return f"{vid}: error: the agent exited {code} and no tests ran"
