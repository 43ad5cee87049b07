"""Unit and run ids (`uow.ids`): UUID version 7 as 32 hex digits, ordered by the time they were made."""

from __future__ import annotations

import uuid

from uow.ids import new_id


def test_an_id_is_a_uuid_version_7_in_32_lowercase_hex_digits_stamped_with_the_millisecond() -> None:
    made = new_id(lambda: 1_765_000_000_123_456_789)
    parsed = uuid.UUID(made)
    assert made == parsed.hex and len(made) == 32
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    assert parsed.int >> 80 == 1_765_000_000_123  # the first 48 bits: Unix time in milliseconds


def test_ids_made_later_sort_later_and_ids_of_the_same_millisecond_still_differ() -> None:
    now = [1_765_000_000_000_000_000]

    def clock() -> int:
        return now[0]

    same_moment = {new_id(clock) for _ in range(1000)}
    assert len(same_moment) == 1000  # 74 random bits each
    now[0] += 1_000_000  # one millisecond later
    later = new_id(clock)
    assert all(later > earlier for earlier in same_moment)
    assert {made[:12] for made in same_moment} == {f"{1_765_000_000_000:012x}"}  # the time: their start
    assert later[:12] == f"{1_765_000_000_001:012x}"
