import os
from pathlib import Path

__all__ = ["Settings"]


class Settings:
    START_PATH = Path(os.environ.get("DOTFLOW_OUTPUT_PATH", ".output"))
