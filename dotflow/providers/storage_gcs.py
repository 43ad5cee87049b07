"""dotflow 1.0.1's import path; the module is `dotflow.storage.gcs`."""

from dotflow.storage.gcs import *  # noqa: F401,F403
from dotflow.storage.gcs import __all__ as __all__
