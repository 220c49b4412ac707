"""Read a YAML file and remember where each field sits, so errors can name file and line.

Every config, kit and mapping file is validated once, at the edge, through a `Document`:
``doc.error(("voices", 3, "output"), "expected a MIDI note 0-127")`` becomes
``kits/my.yaml:14: voices[3].output: expected a MIDI note 0-127``.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import yaml

from rvaed.core.errors import RvaedError

Key = tuple[str | int, ...]
MAX_DEPTH = 64  # config files nest about 5 deep; a deeper document is a mistake
MAX_ENTRIES = 100_000  # aliases can multiply a small file into billions of entries
# Characters that would break an error message into several lines, with their escapes.
LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


@dataclass(frozen=True)
class Document:
    """Parsed YAML data plus the 1-based line of every mapping key and sequence item."""

    path: Path
    data: Any
    lines: dict[Key, int]

    def line_of(self, key: Key) -> int:
        """The line of ``key``, or of its nearest ancestor that has one."""
        while key and key not in self.lines:
            key = key[:-1]
        return self.lines.get(key, 1)

    def error(self, key: Key, message: str) -> RvaedError:
        """A one-line error naming the file, the line and the field."""
        field = _field_name(key)
        where = f"{self.path}:{self.line_of(key)}"
        return _error(f"{where}: {field}: {message}" if field else f"{where}: {message}")

    def only(self, key: Key, data: dict, allowed: Iterable[str]) -> None:
        """An error for the first field of ``data`` (at ``key``) not in ``allowed``."""
        allowed = list(allowed)
        unknown = sorted(set(map(str, data)) - set(allowed))
        if unknown:
            raise self.error((*key, unknown[0]), f"unknown field (expected {', '.join(allowed)})")


def integer_in(value: object, low: int, high: int) -> TypeGuard[int]:
    """An int (not a bool) from ``low`` to ``high``: YAML's counts, notes and channels."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _error(text: str) -> RvaedError:
    """The error with any line break from the file (a key, a name) escaped: one line."""
    return RvaedError(text.translate(LINE_BREAKS))


def _field_name(key: Key) -> str:
    text = ""
    for part in key:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def load(path: str | Path) -> Document:
    """Parse ``path``; unreadable or malformed YAML is a one-line `RvaedError`."""
    path = Path(path)
    try:
        return _parse(path, path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _error(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise _error(f"{path}: not a UTF-8 text file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _error(f"{path}{line}: invalid YAML: {problem}") from None
    except ValueError as exc:  # a scalar its tag cannot hold: 2001-02-30, !!int abc
        raise _error(f"{path}: invalid YAML: {exc}") from None


def _parse(path: Path, text: str) -> Document:
    """Compose once (with libyaml when available), check the shape of the node graph, then
    build the data from the same nodes."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Document(path, None, {})
        lines: dict[Key, int] = {}
        _collect_lines(path, node, (), lines, set())
        return Document(path, loader.construct_document(node), lines)
    finally:
        loader.dispose()


def _collect_lines(path: Path, node: yaml.Node, key: Key, lines: dict[Key, int],
                   open_nodes: set[int]) -> None:
    """Record the line of every key and item; refuse what no config file needs and what
    would make walking the data never end: deep nesting, an alias inside itself, and
    aliases that multiply into too many entries."""
    line = node.start_mark.line + 1
    lines.setdefault(key, line)
    if not isinstance(node, yaml.CollectionNode):
        return
    if len(key) >= MAX_DEPTH or id(node) in open_nodes or len(lines) > MAX_ENTRIES:
        problem = (f"nested more than {MAX_DEPTH} deep" if len(key) >= MAX_DEPTH else
                   "an alias refers to a collection that contains it" if id(node) in open_nodes
                   else f"more than {MAX_ENTRIES} entries (aliases repeating large parts?)")
        raise _error(f"{path}:{line}: invalid YAML: {problem}")
    open_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*key, key_node.value if isinstance(key_node, yaml.ScalarNode) else "?")
            lines[child] = key_node.start_mark.line + 1
            _collect_lines(path, value_node, child, lines, open_nodes)
    else:
        for index, item in enumerate(node.value):
            _collect_lines(path, item, (*key, index), lines, open_nodes)
    open_nodes.discard(id(node))
