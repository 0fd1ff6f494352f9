"""Agents are found through the pytest_axp_agent hook: built-ins answer last, a plugin's
agent is found the same way, and an adapter checks its own fields."""

from __future__ import annotations

import textwrap

import pytest

from pytest_axp import hookspecs
from pytest_axp.agents import AgentNotAvailable, builtin
from pytest_axp.agents.claude import ClaudeAgent
from pytest_axp.agents.claude_acp import ClaudeAcpAgent
from pytest_axp.agents.claude_layer import claude_layer
from pytest_axp.agents.gemini import GeminiAgent
from pytest_axp.agents.registry import AgentRegistry, installed_registry
from pytest_axp.experiment import load_and_resolve
from pytest_axp.sandbox.base import ImageLayer
from pytest_axp.sandbox.docker_image import layer_tag


class Mine:
    name = "mine"
    model_api = None

    def image_layer(self):
        return None

    def validate(self, agent_spec):
        return []


class MyPlugin:
    """Adds `mine` and replaces the built-in `command` (no trylast: it answers first)."""

    def __init__(self):
        self.replacement = Mine()

    @pytest.hookimpl
    def pytest_axp_agent(self, name, config):
        return self.replacement if name in ("mine", "command") else None

    @pytest.hookimpl
    def pytest_axp_agent_names(self, config):
        return ["mine", "command"]


def registry_with(*plugins) -> AgentRegistry:
    pm = pytest.PytestPluginManager()
    pm.add_hookspecs(hookspecs)
    pm.register(builtin, "builtin")
    for plugin in plugins:
        pm.register(plugin)
    return AgentRegistry(pm.hook)


def test_an_unknown_name_is_one_line_naming_the_known_agents():
    with pytest.raises(AgentNotAvailable) as err:
        installed_registry().get("nosuch")
    assert str(err.value).startswith("agent 'nosuch' is not available (known: command, claude, "
                                     "claude-code, acp")
    assert isinstance(installed_registry().get("claude"), ClaudeAcpAgent)
    assert isinstance(installed_registry().get("claude-code"), ClaudeAgent)
    assert isinstance(installed_registry().get("gemini"), GeminiAgent)


def test_a_plugin_agent_is_found_and_the_trylast_builtins_can_be_replaced():
    plugin = MyPlugin()
    registry = registry_with(plugin)
    assert registry.get("mine") is plugin.replacement
    assert registry.get("command") is plugin.replacement  # the plugin's, not the built-in
    assert isinstance(registry.get("claude"), ClaudeAcpAgent)
    assert registry.known() == ["mine", "command", "claude", "claude-code", "acp", "codex",
                                "gemini"]
    with pytest.raises(AgentNotAvailable, match=r"known: mine, command, claude, claude-code, acp"):
        registry.get("nope")


def test_a_conftest_agent_is_found_by_the_session(pytester):
    pytester.makeconftest("""
        import pytest

        class Shout:
            name = "shout"
            model_api = None

        @pytest.hookimpl
        def pytest_axp_agent(name, config):
            return Shout() if name == "shout" else None

        def pytest_axp_agent_names(config):
            return ["shout"]
    """)
    pytester.makepyfile("""
        import pytest
        from pytest_axp.agents import AgentNotAvailable
        from pytest_axp.session import SESSION_KEY

        def test_lookup(request):
            registry = request.config.stash[SESSION_KEY].agents
            assert registry.get("shout").name == "shout"
            assert registry.get("command").name == "command"
            with pytest.raises(AgentNotAvailable,
                               match="known: shout, command, claude, claude-code, acp"):
                registry.get("nope")
    """)
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=1)


def variants(tmp_path, text: str):
    path = tmp_path / "exp.yaml"
    path.write_text(textwrap.dedent(text))
    return load_and_resolve(path)


HEAD = "schema_version: 2\nid: exp\nname: E\ntests: {}\nlimits: {}\nprompts: [go]\n"


@pytest.mark.parametrize(("agents", "problem"), [
    ("agents: [{name: claude, script: x}]",
     ("exp.yaml:7:10: variant default: agent claude: script: only the 'command' agent takes "
      "a script")),
    ("agents: [command]",
     ("exp.yaml:7:10: variant default: agent command: script: the 'command' agent needs a "
      "'script' (the bash it runs)")),
    ("agents: [nosuch]",
     "exp.yaml: variant default: agent 'nosuch' is not available (known: command, claude, "
     "claude-code, acp, codex, gemini)"),
    ("agents: [{name: claude, command: my-agent}]",
     "exp.yaml:7:10: variant default: agent claude: command: only the 'acp' agent takes a "
     "command"),
    ("agents: [{name: acp, command: \"a 'b\"}]",
     "exp.yaml:7:10: variant default: agent acp: command: cannot be split into arguments: "
     "No closing quotation"),
    ("agents: [{name: acp}]",
     "exp.yaml:7:10: variant default: agent acp: command: the 'acp' agent needs a 'command' "
     "(the adapter to start, e.g. \"my-agent --acp\")"),
])
def test_each_adapter_checks_its_own_fields_with_file_and_line(tmp_path, agents, problem):
    found = installed_registry().problems(variants(tmp_path, HEAD + agents + "\n"))
    assert [p.replace(str(tmp_path) + "/", "") for p in found] == [problem]


def test_v1_agent_fields_are_checked_by_the_adapter(tmp_path):
    found = installed_registry().problems(variants(tmp_path, """
        schema_version: 1
        id: legacy
        name: Legacy
        agent: {name: claude, script: x}
        model: sonnet
        flow: {prompt: go}
        tests: {}
        limits: {}
    """))
    assert [p.replace(str(tmp_path) + "/", "") for p in found] == [
        ("exp.yaml:5:8: variant default: agent claude: script: only the 'command' agent "
         "takes a script")]


def test_a_layer_tag_is_a_digest_of_the_base_and_the_key():
    def layer(key: str) -> ImageLayer:
        return ImageLayer(name="thing", key=key, context=lambda log: {})

    tag = layer_tag("pytest-axp/base:1", layer("a"))
    assert tag.startswith("pytest-axp/thing:")
    assert tag == layer_tag("pytest-axp/base:1", layer("a"))
    assert tag != layer_tag("pytest-axp/base:1", layer("b"))
    assert tag != layer_tag("pytest-axp/base:2", layer("a"))


def test_the_claude_layer_is_keyed_by_its_version_without_fetching(monkeypatch, tmp_path):
    # No npm and no binary: making the layer (and its tag) must not need them.
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("AXP_CLAUDE_BINARY", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    layer = ClaudeAgent().image_layer()
    assert layer is not None and layer.name == "claude"
    assert layer_tag("b", layer) == layer_tag("b", claude_layer())
    assert layer_tag("b", claude_layer("1.0.0")) != layer_tag("b", claude_layer("1.0.1"))
