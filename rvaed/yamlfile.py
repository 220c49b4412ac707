"""Read a YAML file and remember where each field sits, so errors can name file and line.

Every config, kit and mapping file is validated once, at the edge, through a `Document`:
``doc.error(("voices", 3, "output"), "expected a MIDI note 0-127")`` becomes
``kits/my.yaml:14: voices[3].output: expected a MIDI note 0-127``.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rvaed.errors import RvaedError

Key = tuple[str | int, ...]


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
        return RvaedError(f"{where}: {field}: {message}" if field else f"{where}: {message}")


def _field_name(key: Key) -> str:
    text = ""
    for part in key:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def load(path: str | Path) -> Document:
    """Parse ``path``; unreadable or malformed YAML is a one-line `RvaedError`."""
    path = Path(path)
    try:
        node, data = _parse(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RvaedError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise RvaedError(f"{path}: not a UTF-8 text file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RvaedError(f"{path}{line}: invalid YAML: {problem}") from None
    lines: dict[Key, int] = {}
    if node is not None:
        _collect_lines(node, (), lines)
    return Document(path, data, lines)


def _parse(text: str) -> tuple[yaml.Node | None, Any]:
    """Compose once (with libyaml when available) and build the data from the same nodes."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def _collect_lines(node: yaml.Node, key: Key, lines: dict[Key, int]) -> None:
    lines.setdefault(key, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*key, key_node.value)
            lines[child] = key_node.start_mark.line + 1
            _collect_lines(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect_lines(item, (*key, index), lines)
