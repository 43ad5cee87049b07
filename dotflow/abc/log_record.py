"""`LogRecord` and `LogRecordError`: the JSON lines of a `Log` whose format is "json" (pydantic models)."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field

__all__ = ["LogRecord", "LogRecordError"]


class LogRecordError(BaseModel):
    exception: str = Field(default="")
    message: str = Field(default="")


class LogRecord(BaseModel):
    timestamp: str = Field(default="")
    level: str = Field(default="")
    workflow_id: str = Field(default="")
    task_id: str = Field(default="")
    status: str = Field(default="")
    duration: Optional[float] = Field(default=None)
    retry_count: Optional[int] = Field(default=None)
    error: Optional[LogRecordError] = Field(default=None)
