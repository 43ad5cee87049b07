"""Small helpers of the public API, as dotflow 1.0.1 exports them.

The do-nothing callbacks used as defaults (`basic_callback`, `basic_function`), error text
(`traceback_error`, `message_error`, module `dotflow.utils.error_handler`) and file and host helpers
(`write_file`, `read_file`, `hostname`, module `dotflow.utils.tools`).
"""

from __future__ import annotations

from dotflow.utils.basic_functions import basic_callback, basic_function
from dotflow.utils.error_handler import message_error, traceback_error
from dotflow.utils.tools import hostname, read_file, write_file

__all__ = [
    "basic_callback",
    "basic_function",
    "hostname",
    "message_error",
    "read_file",
    "traceback_error",
    "write_file",
]
