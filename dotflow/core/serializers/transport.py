"""`SerializerTransport`: a task or workflow model wrapped with its kind (`resource`: "task"/"workflow")."""

from __future__ import annotations

from typing import Optional, Union

from pydantic import BaseModel, Field, model_validator

from dotflow.core.serializers.task import SerializerTask
from dotflow.core.serializers.workflow import SerializerWorkflow

__all__ = ["SerializerTransport"]


class SerializerTransport(BaseModel):
    resource: Optional[str] = Field(default=None)
    content: Union[SerializerTask, SerializerWorkflow]

    @model_validator(mode="after")
    def _resource_from_content(self) -> SerializerTransport:
        self.resource = self.content.model_config.get("title")
        return self
