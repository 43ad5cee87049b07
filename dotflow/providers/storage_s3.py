"""dotflow 1.0.1's import path; the module is `dotflow.storage.s3`."""

from dotflow.storage.s3 import *  # noqa: F401,F403
from dotflow.storage.s3 import __all__ as __all__
