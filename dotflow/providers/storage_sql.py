"""dotflow 1.0.1's import path; the module is `dotflow.storage.sql`."""

from dotflow.storage.sql import *  # noqa: F401,F403
from dotflow.storage.sql import __all__ as __all__
