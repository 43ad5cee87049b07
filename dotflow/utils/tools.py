"""dotflow 1.0.1's file and host helpers: `hostname`, `write_file`, `read_file`.

`write_file` writes `content` as JSON text and `read_file` reads it back (a file that is not JSON
comes back as its text; a missing file as None). Unlike 1.0.1, a value JSON cannot hold is refused
with a `TypeError` naming its type instead of being written as `str(value)`, which could not be read
back as the same value.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

__all__ = ["hostname", "read_file", "write_file"]


def hostname() -> str:
    """This machine's host name, or "local" when it has none."""
    try:
        return socket.gethostname() or "local"
    except OSError:
        return "local"


def write_file(path: str | Path, content: Any, mode: str = "w", encoding: str = "utf-8") -> None:
    """Write `content` to `path` as JSON text (`mode` "w" replaces the file, "a" appends to it)."""
    try:
        text = json.dumps(content)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"write_file({str(path)!r}): {type(content).__name__} is not JSON data ({exc})") from None
    with open(path, mode, encoding=encoding) as file:
        file.write(text)


def read_file(path: str | Path, encoding: str = "utf-8") -> Any:
    """The JSON value in `path`, its text if it is not JSON, or None if there is no such file."""
    path = Path(path)
    if not path.exists():
        return None
    text = path.read_text(encoding=encoding)
    try:
        return json.loads(text)
    except ValueError:
        return text
