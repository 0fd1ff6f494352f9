"""YAML that remembers where every value came from, so errors can point at it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from .errors import ExperimentError, Problem

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_EXPANDED_NODES = 200_000  # aliases may share nodes; expansion past this is an attack
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _DuplicateKey(Exception):
    def __init__(self, key: str, node: Node) -> None:
        self.key, self.node = key, node


class _Loader(yaml.SafeLoader):
    """SafeLoader that records the node behind every dict and list it builds."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.nodes: dict[int, Node] = {}
        self.keep: list[Any] = []  # keep objects alive so their ids stay unique

    def _remember(self, obj: Any, node: Node) -> None:
        self.nodes[id(obj)] = node
        self.keep.append(obj)

    def construct_yaml_map(self, node: MappingNode):
        data: dict[Any, Any] = {}
        self._remember(data, node)
        yield data
        data.update(self.construct_mapping(node))

    def construct_yaml_seq(self, node):
        data: list[Any] = []
        self._remember(data, node)
        yield data
        data.extend(self.construct_sequence(node))

    def construct_mapping(self, node, deep=False):
        if isinstance(node, MappingNode):
            seen: set[str] = set()
            for key_node, _ in node.value:
                if isinstance(key_node, ScalarNode) and key_node.tag != _MERGE_TAG:
                    if key_node.value in seen:
                        raise _DuplicateKey(key_node.value, key_node)
                    seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _Loader.construct_yaml_seq)


@dataclass
class YamlSource:
    file: str
    data: Any
    nodes: dict[int, Node] = field(repr=False)
    _keep: list[Any] = field(repr=False, default_factory=list)

    def problem(self, loc: tuple, message: str, *, at: str = "value",
                path: str | None = None) -> Problem:
        """A problem at `loc`: at the key ('key'), the value ('value') or the parent mapping."""
        from .errors import format_path

        line, col = self.position(loc, at)
        return Problem(self.file, line, col, format_path(loc) if path is None else path, message)

    def position(self, loc: tuple, at: str = "value") -> tuple[int, int]:
        container = self.data
        node = self.nodes.get(id(container))
        mark = node.start_mark if node is not None else None
        for i, part in enumerate(loc):
            node = self.nodes.get(id(container))
            if node is None:
                break
            last = i == len(loc) - 1
            if isinstance(container, dict) and isinstance(part, str):
                pair = _find_key(node, part)
                if pair is None:
                    break  # missing key: point at the mapping that lacks it
                key_node, value_node = pair
                mark = key_node.start_mark if (last and at == "key") else value_node.start_mark
                container = container.get(part)
            elif isinstance(container, list) and isinstance(part, int):
                if not 0 <= part < len(node.value):
                    break
                mark = node.value[part].start_mark
                container = container[part]
            elif isinstance(container, dict) and isinstance(part, int):
                continue  # a single object written where a list is allowed
            else:
                break
        if mark is None:
            return 1, 1
        return mark.line + 1, mark.column + 1


def _find_key(node: Node, key: str):
    if not isinstance(node, MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode) and key_node.value == key:
            return key_node, value_node
    return None


def load_yaml(path: str | Path) -> YamlSource:
    """Parse a YAML file; every failure is an ExperimentError with a position."""
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise ExperimentError([Problem(file, 1, 1, "", f"cannot read file: {e.strerror}")]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ExperimentError([Problem(file, 1, 1, "", f"file too large ({len(raw)} bytes; "
                                                        f"the limit is {MAX_FILE_BYTES})")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise ExperimentError([Problem(file, line, col, "",
                                       f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at offset "
                                       f"{e.start}): save the file as UTF-8")]) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise ExperimentError([Problem(file, line, 1, "", "NUL byte in file: not a text file")])
    loader = None
    try:
        loader = _Loader(text)  # the reader rejects control characters already here
        data = loader.get_single_data()
    except _DuplicateKey as e:
        m = e.node.start_mark
        raise ExperimentError([Problem(file, m.line + 1, m.column + 1, "",
                                       f"duplicate key {e.key!r}")]) from None
    except yaml.MarkedYAMLError as e:
        m = e.problem_mark or e.context_mark
        line, col = (m.line + 1, m.column + 1) if m else (1, 1)
        what = (e.problem or "invalid YAML").strip()
        raise ExperimentError([Problem(file, line, col, "", f"YAML syntax error: {what}")]) from None
    except RecursionError:
        raise ExperimentError([Problem(file, 1, 1, "", "values nested too deeply")]) from None
    except yaml.reader.ReaderError as e:
        line = text[: e.position].count("\n") + 1
        col = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        raise ExperimentError([Problem(file, line, col, "", f"character #x{e.character:04x} is "
                                       "not allowed in YAML")]) from None
    except (yaml.YAMLError, ValueError, TypeError) as e:
        raise ExperimentError([Problem(file, 1, 1, "", f"YAML error: {e}")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    assert loader is not None
    source = YamlSource(file, data, loader.nodes, loader.keep)
    _check_shape(source)
    return source


def _check_shape(source: YamlSource) -> None:
    """Reject cycles (recursive aliases) and alias bombs before anything walks the data."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(obj: Any, loc: tuple) -> int:
        if not isinstance(obj, (dict, list)):
            return 1
        key = id(obj)
        if key in on_path:
            raise ExperimentError([source.problem(loc, "recursive alias: a value contains itself")])
        if key in sizes:
            return sizes[key]
        on_path.add(key)
        items = obj.items() if isinstance(obj, dict) else enumerate(obj)
        total = 1
        for k, v in items:
            total += size(v, loc + (k,))
            if total > MAX_EXPANDED_NODES:
                raise ExperimentError([source.problem(loc, "too many values once aliases are "
                                                           "expanded")])
        on_path.discard(key)
        sizes[key] = total
        return total

    try:
        size(source.data, ())
    except RecursionError:
        raise ExperimentError([Problem(source.file, 1, 1, "", "values nested too deeply")]) from None
