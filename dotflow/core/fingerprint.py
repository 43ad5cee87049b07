"""dotflow 1.0.1's import path; the module is `dotflow.values.fingerprint`."""

from dotflow.values.fingerprint import *  # noqa: F401,F403
from dotflow.values.fingerprint import __all__ as __all__
