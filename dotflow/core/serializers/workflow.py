"""`SerializerWorkflow`: a workflow and its tasks as a pydantic model (`TaskBuilder.schema()`)."""

from __future__ import annotations

from typing import Any, Optional, Union
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

from dotflow.core.serializers.task import SerializerTask, workflow_id_value

__all__ = ["SerializerWorkflow"]


class SerializerWorkflow(BaseModel):
    model_config = ConfigDict(title="workflow")

    workflow_id: Optional[Union[UUID, str]] = Field(default=None)
    workflow_name: Optional[str] = Field(default=None)
    tasks: list[SerializerTask] = Field(default_factory=list)

    @classmethod
    def from_builder(cls, builder: Any) -> SerializerWorkflow:
        return cls(
            workflow_id=builder.workflow_id,
            workflow_name=builder.workflow_name,
            tasks=[SerializerTask.from_task(task) for task in builder.queue],
        )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def id(self) -> Optional[Union[UUID, str]]:
        return self.workflow_id

    @computed_field  # type: ignore[prop-decorator]
    @property
    def name(self) -> Optional[str]:
        return self.workflow_name

    @field_validator("workflow_id", mode="before")
    @classmethod
    def _workflow_id(cls, value: Any) -> Any:
        return workflow_id_value(value)
