"""dotflow 1.0.1's import path; the module is `dotflow.storage.memory`."""

from dotflow.storage.memory import *  # noqa: F401,F403
from dotflow.storage.memory import __all__ as __all__
