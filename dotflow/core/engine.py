"""dotflow 1.0.1's import path; the module is `dotflow.run.engine`."""

from dotflow.run.engine import *  # noqa: F401,F403
from dotflow.run.engine import __all__ as __all__
