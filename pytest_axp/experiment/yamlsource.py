"""YAML that remembers where every mapping and list came from, so errors can point at them."""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import ExperimentError, Problem, format_path

MAX_FILE_BYTES = 5 * 1024 * 1024
# Aliases share nodes, so a small file can expand enormously (a "billion laughs");
# anything past this many values is refused before validation walks it.
MAX_EXPANDED_VALUES = 200_000
# The same for bytes: a 4 MB string reused 20 times is 80 MB once written out. Keys and
# scalars count by their text length, as every artifact derived from the file spells them.
MAX_EXPANDED_BYTES = 8 * 1024 * 1024
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"


class _DuplicateKey(Exception):
    def __init__(self, key: str, node: Node) -> None:
        super().__init__(key)
        self.key, self.node = key, node


class _BadKey(Exception):
    def __init__(self, node: Node) -> None:
        super().__init__("bad key")
        self.node = node


class _Loader(yaml.SafeLoader):
    """SafeLoader that records the node behind every dict and list it builds."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.nodes: dict[int, Node] = {}
        self.keep: list[Any] = []  # ids are only unique while the objects live

    def _remember(self, obj: Any, node: Node) -> None:
        self.nodes[id(obj)] = node
        self.keep.append(obj)

    def construct_yaml_map(self, node: MappingNode) -> Generator[dict[Any, Any], None, None]:
        data: dict[Any, Any] = {}
        self._remember(data, node)
        yield data
        data.update(self.construct_mapping(node))

    def construct_yaml_seq(self, node: SequenceNode) -> Generator[list[Any], None, None]:
        data: list[Any] = []
        self._remember(data, node)
        yield data
        data.extend(self.construct_sequence(node))

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: set[str] = set()
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                if not isinstance(key_node, ScalarNode) or key_node.tag != _STR_TAG:
                    # Field names are text; `1:` or `null:` as a key is a typo or a trap.
                    raise _BadKey(key_node)
                if key_node.value in seen:
                    raise _DuplicateKey(key_node.value, key_node)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _Loader.construct_yaml_seq)


@dataclass
class YamlSource:
    """Parsed data plus the YAML nodes behind its containers."""

    file: str
    data: Any
    nodes: dict[int, Node] = field(repr=False, default_factory=dict)
    keep: list[Any] = field(repr=False, default_factory=list)
    abspath: str = ""  # the file's absolute path; `file` is as the user named it

    def problem(self, loc: tuple[Any, ...], message: str, *, at: str = "value",
                path: str | None = None) -> Problem:
        line, col = self.position(loc, at)
        return Problem(self.file, line, col, format_path(loc) if path is None else path, message)

    def where(self, loc: tuple[Any, ...]) -> str:
        line, col = self.position(loc)
        return f"{self.file}:{line}:{col}"

    def position(self, loc: tuple[Any, ...], at: str = "value") -> tuple[int, int]:
        """1-based (line, column) of `loc`: the key (`at="key"`), the value, or, when a step of
        the walk does not exist in the data (a missing field), the last node reached."""
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
                    break
                key_node, value_node = pair
                mark = key_node.start_mark if (last and at == "key") else value_node.start_mark
                container = container.get(part)
            elif isinstance(container, list) and isinstance(part, int):
                if not isinstance(node, SequenceNode) or not 0 <= part < len(node.value):
                    break
                mark = node.value[part].start_mark
                container = container[part]
            elif isinstance(container, dict) and isinstance(part, int):
                continue  # one object written where a list is allowed: it is item 0
            else:
                break
        if mark is None:
            return 1, 1
        return mark.line + 1, mark.column + 1


def _find_key(node: Node, key: str) -> tuple[Node, Node] | None:
    if not isinstance(node, MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode) and key_node.value == key:
            return key_node, value_node
    return None


def _line_col(text: str | bytes, offset: int) -> tuple[int, int]:
    newline = "\n" if isinstance(text, str) else b"\n"
    line = text[:offset].count(newline) + 1  # type: ignore[arg-type]
    col = offset - (text.rfind(newline, 0, offset) + 1) + 1  # type: ignore[arg-type]
    return line, col


def read_text(path: str | os.PathLike[str]) -> str:
    """The file as text: at most 5 MB of UTF-8. Raises ExperimentError."""
    file = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ExperimentError([Problem(file, 1, 1, "",
                                       f"cannot read file: {e.strerror or e}")]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ExperimentError([Problem(file, 1, 1, "", f"file too large (the limit is "
                                                        f"{MAX_FILE_BYTES} bytes)")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line, col = _line_col(raw, e.start)
        raise ExperimentError([Problem(file, line, col, "", f"not valid UTF-8 (byte "
                                       f"0x{raw[e.start]:02x} at offset {e.start}): save the "
                                       "file as UTF-8")]) from None
    return text[1:] if text.startswith("\ufeff") else text


def parse_yaml(text: str, file: str) -> YamlSource:
    """Parse one YAML document whose top level is a mapping. Raises ExperimentError."""
    if "\x00" in text:
        line, col = _line_col(text, text.index("\x00"))
        raise ExperimentError([Problem(file, line, col, "", "NUL character: not a text file")])
    _refuse_amplification(text, file)
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # the reader already rejects control characters here
        data = loader.get_single_data()
    except _DuplicateKey as e:
        m = e.node.start_mark
        raise ExperimentError([Problem(file, m.line + 1, m.column + 1, "",
                                       f"duplicate key {e.key!r}")]) from None
    except _BadKey as e:
        m = e.node.start_mark
        raise ExperimentError([Problem(file, m.line + 1, m.column + 1, "",
                                       "mapping keys must be plain text (quote it)")]) from None
    except yaml.reader.ReaderError as e:
        line, col = _line_col(text, e.position)
        what = f"character #x{e.character:04x}" if isinstance(e.character, int) else "character"
        raise ExperimentError([Problem(file, line, col, "",
                                       f"{what} is not allowed in YAML")]) from None
    except yaml.MarkedYAMLError as e:
        m = e.problem_mark or e.context_mark
        line, col = (m.line + 1, m.column + 1) if m else (1, 1)
        what = (e.problem or e.context or "invalid YAML").strip()
        raise ExperimentError([Problem(file, line, col, "",
                                       f"YAML syntax error: {what}")]) from None
    except RecursionError:
        raise ExperimentError([Problem(file, 1, 1, "", "values nested too deeply")]) from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as e:
        # Constructors can fail on odd scalars (e.g. a timestamp out of range).
        raise ExperimentError([Problem(file, 1, 1, "", f"YAML error: {e}")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    source = YamlSource(file, data, loader.nodes, loader.keep)
    if not isinstance(data, dict):
        raise ExperimentError([source.problem((), "the top level must be a mapping of fields",
                                              path="")])
    _check_shape(source)
    return source


def load_yaml(path: str | os.PathLike[str]) -> YamlSource:
    """Read and parse an experiment file. Raises ExperimentError."""
    source = parse_yaml(read_text(path), str(path))
    source.abspath = os.path.abspath(path)
    return source


_TOO_BIG = (f"expands to more than {MAX_EXPANDED_BYTES // (1024 * 1024)} MB once aliases "
            "are expanded: write the value once instead of reusing it through aliases")


def _scalar_bytes(value: Any) -> int:
    return len(value) if isinstance(value, str) else len(str(value))


def _refuse_amplification(text: str, file: str) -> None:
    """The byte bound, checked on libyaml's node graph (50x faster than the pure-Python
    parser) so an alias bomb is refused before the slow parse; any YAML error is left to
    that parse, which reports it with its position."""
    if not getattr(yaml, "__with_libyaml__", False):
        return  # _check_shape applies the same bound after the parse
    try:
        root = yaml.compose(text, Loader=yaml.CSafeLoader)
    except Exception:
        return
    sizes: dict[int, tuple[int, int]] = {}
    on_path: set[int] = set()

    def size(node: Node, loc: tuple[Any, ...]) -> tuple[int, int]:
        """(values, bytes) as _check_shape counts them."""
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in on_path:
            return 0, 0  # a cycle: refused by _check_shape with its position
        if isinstance(node, ScalarNode):
            return 1, len(node.value)
        on_path.add(key)
        pairs = ([(None, n) for n in node.value] if isinstance(node, SequenceNode)
                 else node.value)
        total, nbytes = 1, 0
        for i, (key_node, child) in enumerate(pairs):
            step = key_node.value if isinstance(key_node, ScalarNode) else i
            values, more = size(child, (*loc, step))
            total += values
            nbytes += more + (len(key_node.value) if isinstance(key_node, ScalarNode) else 0)
            if total > MAX_EXPANDED_VALUES or nbytes > MAX_EXPANDED_BYTES:
                # The container, not the value: an alias's value sits where its anchor is.
                m = node.start_mark
                what = (_TOO_BIG if total <= MAX_EXPANDED_VALUES
                        else "too many values once aliases are expanded")
                raise ExperimentError([Problem(file, m.line + 1, m.column + 1,
                                               format_path(loc), what)])
        on_path.discard(key)
        sizes[key] = (total, nbytes)
        return total, nbytes

    try:
        if root is not None:
            size(root, ())
    except RecursionError:
        return


def _check_shape(source: YamlSource) -> None:
    """Refuse cycles (recursive aliases) and alias bombs before anything walks the data."""
    sizes: dict[int, tuple[int, int]] = {}
    on_path: set[int] = set()

    def size(obj: Any, loc: tuple[Any, ...]) -> tuple[int, int]:
        """(values, bytes) of `obj` with every alias expanded."""
        if not isinstance(obj, (dict, list)):
            return 1, _scalar_bytes(obj)
        key = id(obj)
        if key in on_path:
            raise ExperimentError([source.problem(
                loc, "recursive alias: a value contains itself")])
        if key in sizes:
            return sizes[key]
        on_path.add(key)
        total, nbytes = 1, 0
        for k, v in (obj.items() if isinstance(obj, dict) else enumerate(obj)):
            values, more = size(v, (*loc, k))
            total += values
            nbytes += more + (_scalar_bytes(k) if isinstance(obj, dict) else 0)
            if total > MAX_EXPANDED_VALUES:
                raise ExperimentError([source.problem(
                    loc, "too many values once aliases are expanded")])
            if nbytes > MAX_EXPANDED_BYTES:
                # The container, not the value: an alias's value sits where its anchor is.
                raise ExperimentError([source.problem(loc, _TOO_BIG)])
        on_path.discard(key)
        sizes[key] = (total, nbytes)
        return total, nbytes

    try:
        size(source.data, ())
    except RecursionError:
        raise ExperimentError([Problem(source.file, 1, 1, "",
                                       "values nested too deeply")]) from None


__all__ = [
    "MAX_EXPANDED_BYTES",
    "MAX_FILE_BYTES",
    "YamlSource",
    "load_yaml",
    "parse_yaml",
    "read_text",
]
