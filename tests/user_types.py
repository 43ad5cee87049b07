"""Types a user registers with dotflow.codec, defined at module level so child processes have them."""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path

import pydantic

import dotflow.codec


@dotflow.codec.register
class Stage(enum.Enum):
    RAW = "raw"
    CLEAN = "clean"


@dotflow.codec.register
class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dotflow.codec.register
@dataclasses.dataclass(frozen=True)
class Batch:
    name: str
    rows: tuple[int, ...]
    stage: Stage
    source: Path
    checked: bool = dataclasses.field(default=False, init=False)


class Order(pydantic.BaseModel):
    sku: str
    qty: int
    tags: list[str] = []


dotflow.codec.register(Order, lambda order: order.model_dump(mode="json"), Order.model_validate, tag="shop.Order")


def sample_batch() -> Batch:
    batch = Batch("b1", (1, 2, 3), Stage.CLEAN, Path("/data/in.csv"))
    object.__setattr__(batch, "checked", True)
    return batch
