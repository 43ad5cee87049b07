"""dotflow with transactional checkpoints: the dotflow 1.0.1 API, persisted through a unit of work."""

from dotflow.core.action import Action as action
from dotflow.core.config import Config
from dotflow.core.context import Context
from dotflow.core.dotflow import DotFlow
from dotflow.core.task import Task
from dotflow.run.claims import Claim

__version__ = "1.0.1"
__description__ = "dotflow with transactional checkpoints: workflows whose steps commit through a unit of work"

__all__ = ["DotFlow", "action", "Context", "Config", "Task", "Claim"]
