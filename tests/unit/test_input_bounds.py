"""Bounds on what an experiment file may make: expanded bytes, variants, names, paths."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest
import yaml

from pytest_axp.experiment import ExperimentError, load_and_resolve, yamlsource
from pytest_axp.experiment.models import MAX_NAME_LENGTH
from pytest_axp.experiment.resolve import MAX_VARIANT_ID_LENGTH, MAX_VARIANTS
from pytest_axp.record.fsdiff import MAX_FLAT_BYTES, flatten, patch_name
from pytest_axp.record.layout import VariantPaths, safe_name
from pytest_axp.staging import (
    StagingError,
    build_entry,
    plan_entries,
    resolve_source,
    symlink_in_path,
)

HEAD = "schema_version: 2\nid: exp\nname: Experiment\n"
REST = "tests: {}\nlimits: {}\n"


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    with pytest.raises(ExperimentError) as err:
        load_and_resolve(path)
    return [str(p).replace(str(tmp_path) + "/", "") for p in err.value.problems]


def _amplified(size: int = 4 * 1024 * 1024, uses: int = 20) -> str:
    refs = ", ".join(["*big"] * uses)
    return (HEAD + f"agents: claude\nprompts:\n  - id: p\n    prompt: &big {'x' * size}\n"
            f"    tags: [{refs}]\n" + REST)


def test_alias_amplification_is_refused_without_building_it(tmp_path):
    text = _amplified()
    tracemalloc.start()
    try:
        found = problems(tmp_path, text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # One problem, at the list that reuses the value.
    assert found == [("exp.yaml:8:11: prompts[0].tags: expands to more than 8 MB once aliases "
                     "are expanded: write the value once instead of reusing it through aliases")]
    # The 80 MB it would expand to is never built (the text itself is 4 MB).
    assert peak < 60 * 1024 * 1024


def test_the_bound_holds_without_libyaml(tmp_path, monkeypatch):
    monkeypatch.setattr(yamlsource.yaml, "__with_libyaml__", False)
    (found,) = problems(tmp_path, _amplified())
    assert found.startswith("exp.yaml:8:11: prompts[0].tags: expands to more than 8 MB")


def test_reuse_under_the_bound_is_fine(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(_amplified(size=100_000, uses=10))
    (variant,) = load_and_resolve(path)
    assert len(variant.prompt.tags) == 10


def test_too_many_variants(tmp_path):
    axes = "".join(f"{axis}: [{', '.join(f'{{name: {c}{i}}}' for i in range(n))}]\n"
                   for axis, c, n in (("environments", "e", 25), ("products", "p", 21)))
    prompts = "prompts: [" + ", ".join(f"{{id: q{i}, prompt: go}}" for i in range(20)) + "]\n"
    found = problems(tmp_path, HEAD + "agents: claude\n" + prompts + axes + REST)
    assert found == [(f"exp.yaml:1:1: the axes make 10500 variants; at most {MAX_VARIANTS} are "
                     "allowed per file: split the experiment")]


def test_resolved_variants_are_bounded_together(tmp_path):
    # 1 MB written once, copied into each of 80 variants: 80 MB of resolved-variant.yaml.
    agents = ", ".join(f"{{name: claude, model: m{i}}}" for i in range(80))
    text = (HEAD + f"agents: [{agents}]\nprompts: [{{id: p, prompt: {'x' * 1_000_000}}}]\n"
            + REST)
    (found,) = problems(tmp_path, text)
    assert "its 80 variants would write more than 64 MB of resolved variants" in found


LONG = "n" * 300


@pytest.mark.parametrize("fragment, position, field", [
    (f"agents: claude\nprompts: go\nextensions: [{{id: {LONG}}}]\n", "6:", "extensions[0].id"),
    (f"agents: claude\nprompts: [{{id: {LONG}, prompt: go}}]\n", "5:", "prompts[0].id"),
    (f"agents: claude\nprompts: go\nenvironments: [{{name: {LONG}}}]\n", "6:",
     "environments[0].name"),
    (f"agents: claude\nprompts: go\nproducts: [{{name: {LONG}}}]\n", "6:", "products[0].name"),
    (f"agents: [{{name: claude, model: {LONG}}}]\nprompts: go\n", "4:", "agents[0].model.name"),
    ((f"agents: claude\nprompts: go\nenvironments: [{{name: e, setup: [{{name: {LONG}, "
     "script: 'true'}]}]\n"), "6:", "environments[0].setup[0].name"),
    (f"agents: claude\nprompts: go\nfiles: [{{name: {LONG}, dest: x}}]\n", "6:",
     "files[0].name"),
    ((f"agents: claude\nprompts: go\nenvironments: [{{name: e, setup: [{{name: s, "
     f"script: 'true', mcp_servers: [{{name: {LONG}, url: 'http://x'}}]}}]}}]\n"), "6:",
     "environments[0].setup[0].mcp_servers[0].name"),
])
def test_long_names_are_refused_where_written(tmp_path, fragment, position, field):
    (found,) = problems(tmp_path, HEAD + fragment + REST)
    assert found.startswith(f"exp.yaml:{position}")
    assert f": {field}: too long: 300 characters, at most {MAX_NAME_LENGTH}" in found


def test_long_test_name_and_v1_variant_id(tmp_path):
    (found,) = problems(tmp_path, HEAD + "agents: claude\nprompts: go\ntests:\n  application:"
                        f"\n    - name: {LONG}\n      script: 'true'\nlimits: {{}}\n")
    assert found.startswith("exp.yaml:8:13: tests.application[0].name: too long")
    v1 = ("schema_version: 1\nid: exp\nname: E\nflow: {prompt: go}\n"
          f"matrix:\n  variant:\n    - id: {LONG}\n" + REST)
    (found,) = problems(tmp_path, v1)
    assert found.startswith("exp.yaml:7:11: matrix.variant[0].id: too long")


def test_control_characters_in_names(tmp_path):
    (found,) = problems(tmp_path, HEAD + 'agents: claude\nprompts: go\nenvironments: '
                        '[{name: e, setup: [{name: "a\\nb", script: "true"}]}]\n' + REST)
    assert "environments[0].setup[0].name: must not contain control characters" in found


def test_a_variant_id_made_of_long_names_is_bounded(tmp_path):
    exts = f"extensions:\n  - id: {'a' * 90}\n    extensions:\n      - id: {'b' * 90}\n" \
           f"        extensions: [{{id: {'c' * 90}}}]\n"
    (found,) = problems(tmp_path, HEAD + "agents: claude\nprompts: go\n" + exts + REST)
    assert found.startswith("exp.yaml:10:22: extensions[0].extensions[0].extensions[0]: "
                            "variant id aaaa")
    assert f"is 272 characters long, at most {MAX_VARIANT_ID_LENGTH}" in found


def test_patch_and_log_names_fit_a_file_name():
    deep = "/".join(["directory-with-a-long-name"] * 40) + "/file.py"
    name = flatten(deep)
    assert len(name.encode()) <= MAX_FLAT_BYTES and name.startswith("directory-with")
    assert name != flatten(deep.replace("file.py", "other.py"))
    wide = "/".join(["é" * 60] * 4)  # 2 bytes a character
    assert len(flatten(wide).encode()) <= MAX_FLAT_BYTES
    taken: set[str] = set()
    assert patch_name("a/b_c", taken) == "a_b_c"
    assert patch_name("a_b/c", taken) != "a_b_c"  # two paths never share one patch file
    log = VariantPaths(Path("/r")).test_log("application", "t" * 400, "stdout")
    assert len(log.name) < 255 and safe_name("t" * 400) != safe_name("t" * 401)


# -- symlinks --------------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path):
    """exp/ with links to outside/: to a file, to a folder, and a linked parent folder."""
    (tmp_path / "outside" / "dir").mkdir(parents=True)
    (tmp_path / "outside" / "secret.txt").write_text("SECRET")
    (tmp_path / "outside" / "dir" / "f.txt").write_text("SECRET")
    exp = tmp_path / "exp"
    (exp / "real").mkdir(parents=True)
    (exp / "real" / "a.txt").write_text("ok")
    os.symlink(tmp_path / "outside" / "secret.txt", exp / "filelink")
    os.symlink("../outside/dir", exp / "dirlink")
    os.symlink(tmp_path / "outside", exp / "parentlink")
    return exp


@pytest.mark.parametrize("source, link", [
    ("filelink", "filelink"), ("dirlink", "dirlink"), ("dirlink/f.txt", "dirlink"),
    ("parentlink/secret.txt", "parentlink"), ("real/../filelink", "filelink"),
])
def test_a_source_through_a_symlink_is_refused(tree, source, link):
    found = symlink_in_path(source, tree)
    assert found is not None and found[0] == str(tree / link)
    entry = yaml.safe_load(f"{{source: {source}, dest: x}}")
    from pytest_axp.experiment.models import FileEntry

    (planned,) = plan_entries([FileEntry(**entry)], tree)
    assert planned.state == "SYMLINK" and f"{tree / link} is a symlink (to " in planned.problem


def test_real_folders_and_dotdot_are_fine(tree):
    assert symlink_in_path("real/a.txt", tree) is None
    assert symlink_in_path("../exp/real/../real/a.txt", tree) is None
    assert resolve_source("../exp/real/../real/a.txt", tree) == tree / "real" / "a.txt"


def test_staging_refuses_a_link_swapped_in_after_the_check(tree):
    # The plan saw real/; by the time it is staged, it is a link to the outside.
    planned = resolve_source("real", tree)
    os.rename(tree / "real", tree / "was-real")
    os.symlink(tree.parent / "outside", tree / "real")
    with pytest.raises(StagingError, match="is a symlink"):
        build_entry(planned, "x")
    with pytest.raises(StagingError, match="is a symlink"):
        build_entry(tree / "filelink", "x")
    with pytest.raises(StagingError, match="is a symlink"):
        build_entry(tree / "parentlink" / "secret.txt", "x")


def test_links_inside_a_folder_are_skipped_and_counted(tree):
    os.symlink(tree / "filelink", tree / "real" / "inner-file")
    os.symlink(tree.parent / "outside", tree / "real" / "inner-dir")
    entry = build_entry(tree / "real", "x")
    assert entry.file_count == 1 and entry.skipped_symlinks == 2


def test_a_progress_watcher_that_never_started_stops_quietly(tmp_path):
    # A run that fails before it starts (a folder it cannot make) must show that error,
    # not "cannot join thread before it is started".
    import io

    from axp_cli.progress import ProgressWatcher
    from pytest_axp.record.layout import RunPaths

    out = io.StringIO()
    ProgressWatcher([RunPaths(tmp_path / "run")], ["v"], out=out, live=False).stop()
