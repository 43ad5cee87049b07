"""dotflow 1.0.1's import path; the module is `dotflow.storage.batch`."""

from dotflow.storage.batch import *  # noqa: F401,F403
from dotflow.storage.batch import __all__ as __all__
