"""The command line's settings file, `~/.dotflow/config.json`, as dotflow 1.0.1 reads and writes it.

Its `cloud` section holds `base_url` and `token`. `resolve(key, env_var)` prefers a non-empty
environment variable over the file. A missing, unreadable or malformed file reads as `{}`. The file is
written with mode 0600 (the token is a secret), through a temporary file renamed into place, so a
reader never sees half of it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

__all__ = [
    "CLOUD_SECTION",
    "CONFIG_DIR_NAME",
    "CONFIG_FILE_NAME",
    "clear_cloud_config",
    "config_path",
    "load_cloud_config",
    "resolve",
    "save_cloud_config",
]

CONFIG_DIR_NAME = ".dotflow"
CONFIG_FILE_NAME = "config.json"
CLOUD_SECTION = "cloud"


def config_path() -> Path:
    """`~/.dotflow/config.json` (the home directory as `Path.home()` finds it)."""
    return Path.home() / CONFIG_DIR_NAME / CONFIG_FILE_NAME


def load_cloud_config() -> dict[str, str]:
    """The string entries of the `cloud` section, or `{}`."""
    try:
        data = json.loads(config_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    section = data.get(CLOUD_SECTION) if isinstance(data, dict) else None
    if not isinstance(section, dict):
        return {}
    return {key: value for key, value in section.items() if isinstance(value, str)}


def save_cloud_config(token: str, base_url: str) -> Path:
    """Write the `cloud` section (replacing the file) and return its path."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({CLOUD_SECTION: {"base_url": base_url, "token": token}}, indent=2) + "\n"
    handle, temporary = tempfile.mkstemp(prefix=".config-", dir=path.parent)  # created with mode 0600
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def clear_cloud_config() -> bool:
    """Delete the file; True if there was one to delete."""
    try:
        config_path().unlink()
    except FileNotFoundError:
        return False
    except OSError:
        return False
    return True


def resolve(key: str, env_var: str) -> str | None:
    """The environment variable `env_var` if set and non-empty, else `key` of the `cloud` section, else None."""
    value = os.environ.get(env_var)
    if value:
        return value
    return load_cloud_config().get(key) or None
