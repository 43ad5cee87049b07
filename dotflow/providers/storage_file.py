"""dotflow 1.0.1's import path; the module is `dotflow.storage.file`."""

from dotflow.storage.file import *  # noqa: F401,F403
from dotflow.storage.file import __all__ as __all__
