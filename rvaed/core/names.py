"""File names as a log line shows them: one line, whatever the name holds.

A file name may hold any byte but ``/`` and NUL: a newline in a dropped file's name would
otherwise start a second, forged log line (a fake CRITICAL), and a name that is not valid
UTF-8 (held by Python as surrogate escapes) would make the log handler fail. `shown` escapes
both; printable non-ASCII (a drummer's ``Caña.mid``) stays as it is.
"""

import re
from pathlib import PurePath

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\\]")


def _escape(match: re.Match) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (os.fsdecode's surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def shown(name: str | PurePath) -> str:
    """``name`` with control characters, line separators and undecodable bytes escaped."""
    return _UNSAFE.sub(_escape, str(name))
