"""The command lines of the README, as a reader would copy them: from its code blocks
(indented or fenced), continuation lines joined, with the section they stand in.

A code-block line is a command when its first word is a program (by its file name, so
`~/.local/rvaed/bin/pip` counts as pip); YAML, log output (`rvaed run: error: ...`) and the
like are not. Shared by tests/test_readme.py and the bookworm install test, which run them.
"""

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
PROGRAMS = {"rvaed", "pip", "pipx", "python3", "python", "bash", "sh", "sudo", "mkdir", "cp",
            "ln", "install", "chmod", "usermod", "systemctl", "journalctl", "scp", "oscsend",
            "oscdump", "apt", "apt-get", "git", "cd", "jackd", "curl"}
FENCE = re.compile(r"^\s*```\s*(\w*)")


@dataclass(frozen=True)
class Command:
    section: str  # the nearest heading above it
    text: str  # as written, continuation lines joined with their backslashes and newlines

    @property
    def program(self) -> str:
        return Path(self.text.split()[0]).name


def code_blocks(text: str) -> list[tuple[str, list[str]]]:
    """(section, lines) of every code block: indented by 4 or more after a blank line, or
    fenced (not ```yaml and the like)."""
    blocks: list[tuple[str, list[str]]] = []
    section, block, fence, previous_blank = "", None, None, True
    for line in text.splitlines():
        if fence is not None:
            if FENCE.match(line):
                fence = None
            elif fence in ("", "sh", "bash", "shell", "console"):
                blocks[-1][1].append(line)
            continue
        if match := FENCE.match(line):
            fence = match[1]
            blocks.append((section, []))
            block = None
        elif line.startswith("#"):
            section, block = line.lstrip("#").strip(), None
        elif line.strip() and len(line) - len(line.lstrip()) >= 4 and (previous_blank or block):
            if block is None:
                block = []
                blocks.append((section, block))
            block.append(line)
        elif line.strip():
            block = None
        previous_blank = not line.strip()
    return blocks


def commands(readme: Path = README) -> list[Command]:
    """Every command line of the README's code blocks, in order."""
    found = []
    for section, lines in code_blocks(readme.read_text(encoding="utf-8")):
        joined: list[str] = []
        for line in (line.strip() for line in lines):
            if joined and joined[-1].endswith("\\"):
                joined[-1] += "\n" + line
            else:
                joined.append(line)
        found += [Command(section, text) for text in joined if _is_command(text)]
    return found


def _is_command(text: str) -> bool:
    words = text.split()
    return (bool(words) and Path(words[0]).name in PROGRAMS
            and not any(word.endswith(":") for word in words[:2]))


def in_section(section: str, readme: Path = README) -> list[Command]:
    """The commands of one section (by its heading), in order."""
    return [command for command in commands(readme) if command.section == section]
