"""`Settings`: paths and texts dotflow 1.0.1 reads from one class; `DOTFLOW_OUTPUT_PATH` is read once, at import.

The same attributes as 1.0.1. One differs: `TEMPLATE_REPO` is the project template shipped inside this
package (used by `dotflow init`, which works offline), not a remote repository.
"""

import os
from pathlib import Path

__all__ = ["Settings"]

_OUTPUT = Path(os.environ.get("DOTFLOW_OUTPUT_PATH", ".output"))


class Settings:
    START_PATH = _OUTPUT
    GITIGNORE = Path(".gitignore")

    LOG_PROFILE = "dotflow"
    LOG_FILE_NAME = Path("flow.log")
    LOG_PATH = _OUTPUT / "flow.log"
    LOG_FORMAT = "%(asctime)s - %(levelname)s [%(name)s]: %(message)s"

    TEMPLATE_REPO = str(Path(__file__).resolve().parent / "templates" / "project")
    TEMPLATE_BRANCH = "master"
    TEMPLATE_CLOUD_DIR = "cloud"

    ICON = ":game_die:"
    STEP_ICON = ":gear:"
    ERROR_ALERT = f"{ICON} [bold red]Error:[/bold red]"
    INFO_ALERT = f"{ICON} [bold blue]Info:[/bold blue]"
    WARNING_ALERT = f"{ICON} [bold yellow]Warning:[/bold yellow]"
    QUESTION_ALERT = f"{ICON} [bold magenta]Question:[/bold magenta]"
