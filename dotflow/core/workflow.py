"""dotflow 1.0.1's import path; the module is `dotflow.run.modes`."""

from dotflow.run.modes import *  # noqa: F401,F403
from dotflow.run.modes import __all__ as __all__
