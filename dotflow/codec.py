"""Values a step may return to a durable storage: register your own types here.

The checkpoint encoding (`dotflow.values.codec`, documented there and in docs/values.md) stores plain
JSON data, tuples, sets, bytes, dates and times, Decimal, UUID, pathlib paths and Contexts as they are.
Any other class is refused until it is registered:

    import dotflow.codec

    @dotflow.codec.register            # an Enum or a dataclass: a built-in form, no functions needed
    class Color(enum.Enum):
        RED = "red"

    dotflow.codec.register(Order, lambda o: o.model_dump(mode="json"), Order.model_validate, tag="shop.Order")

Register in the module that defines the class, so every process that reads a checkpoint has it: a
stored document whose tag is not registered where it is read is an error naming the key and the tag.
"""

from __future__ import annotations

from dotflow.values.codec import (
    DecodeError,
    UnencodableValueError,
    decode,
    dumps,
    encode,
    loads,
    register,
    registered_tag,
    unregister,
)

__all__ = [
    "DecodeError",
    "UnencodableValueError",
    "decode",
    "dumps",
    "encode",
    "loads",
    "register",
    "registered_tag",
    "unregister",
]
