"""BatchStorage on a damaged folder: only the newest segment's torn tail is recovered on its own; any
other damage refuses the open, names the segment and the byte, and changes nothing; `repair` is the
user's explicit way on."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from dotflow import Config, Context, DotFlow, action
from dotflow.core.exception import CorruptCheckpointError, DamagedSegmentError
from dotflow.providers import BatchStorage, StorageFile
from dotflow.storage import batch_log
from dotflow.storage import batch_inspect
from dotflow.values.checkpoint_format import encode_document

KEYS_PER_SEGMENT = 10


def tasks(folder: Path) -> Path:
    return folder / "tasks"


def segment_files(folder: Path) -> list[Path]:
    return sorted(tasks(folder).glob(".batch-*.log"))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of the folder (names and bytes), the lock file and the marker included."""
    return {path.name: path.read_bytes() for path in sorted(tasks(folder).iterdir())}


def open_batch(folder: Path, **kwargs) -> BatchStorage:
    storage = BatchStorage(StorageFile(path=folder), **({"max_batch": KEYS_PER_SEGMENT, "max_delay": None} | kwargs))
    assert isinstance(storage, BatchStorage)
    return storage


def three_segments(folder: Path) -> None:
    """Segment 1: k0-k9 = "s1"; segment 2: k5-k14 = "s2" (k5-k9 overwrite older values); segment 3: k15-k24."""
    with open_batch(folder) as batch:
        for seq, keys in ((1, range(0, 10)), (2, range(5, 15)), (3, range(15, 25))):
            for number in keys:
                batch.post(f"k{number}.json", Context(storage=f"s{seq}"))
    assert len(segment_files(folder)) == 3  # little garbage: close() did not compact


def values(batch: BatchStorage) -> dict[str, object]:
    return {f"k{n}.json": batch.get(f"k{n}.json").storage for n in range(25)}


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def document_offset(path: Path) -> int:
    """The offset of a byte inside the second checkpoint document of a segment (the document stays JSON)."""
    data = path.read_bytes()
    return data.index(b"dotflow-checkpoint", data.index(b"dotflow-checkpoint") + 1) + 2


def refused(folder: Path, segment: Path) -> DamagedSegmentError:
    before = snapshot(folder)
    with pytest.raises(DamagedSegmentError) as raised:
        open_batch(folder)
    assert snapshot(folder) == before  # nothing deleted, rewritten or created
    error = raised.value
    assert error.path == str(segment) and segment.name in str(error)
    assert f"at byte {error.offset}:" in str(error) and "Nothing was changed" in str(error)
    assert "BatchStorage.repair(StorageFile(path=...))" in str(error)
    assert isinstance(error, CorruptCheckpointError) and isinstance(error, ValueError)
    open_batch(folder / "other").close()  # the refused open released the folder's lock (another folder works)
    return error


# ---------------------------------------------------------------------------------------------- refusals


def test_a_byte_flipped_in_an_older_segment_refuses_the_open_and_changes_nothing(tmp_path):
    three_segments(tmp_path)
    second = segment_files(tmp_path)[1]
    flip(second, document_offset(second))
    error = refused(tmp_path, second)
    assert error.offset == second.stat().st_size - 78  # the trailer: the digest no longer matches
    assert "does not match" in error.reason


def test_a_byte_flipped_in_a_record_line_is_placed_at_that_line(tmp_path):
    three_segments(tmp_path)
    second = segment_files(tmp_path)[1]
    data = second.read_bytes()
    line = data.index(b'{"key":"k6.json"')
    flip(second, line + 1)  # '{"key"' -> '{#key"': not JSON
    error = refused(tmp_path, second)
    assert error.offset == line and "not a valid record" in error.reason


def test_an_older_segment_cut_short_refuses_the_open(tmp_path):
    three_segments(tmp_path)
    first = segment_files(tmp_path)[0]
    data = first.read_bytes()
    first.write_bytes(data[: len(data) // 2])
    error = refused(tmp_path, first)
    assert error.offset <= len(data) // 2 and f"ends at byte {len(data) // 2}" in error.reason


def test_a_byte_flipped_in_the_compacted_segment_refuses_the_open(tmp_path):
    three_segments(tmp_path)
    with open_batch(tmp_path) as batch:
        batch.compact()
    [compacted] = segment_files(tmp_path)
    flip(compacted, document_offset(compacted))
    refused(tmp_path, compacted)


def test_a_complete_newest_segment_with_a_flipped_byte_is_damage_not_a_torn_tail(tmp_path):
    three_segments(tmp_path)
    newest = segment_files(tmp_path)[-1]
    flip(newest, document_offset(newest))
    refused(tmp_path, newest)


def test_a_newest_segment_whose_size_field_grew_is_damage_although_its_records_run_past_the_end(tmp_path):
    three_segments(tmp_path)
    newest = segment_files(tmp_path)[-1]
    data = newest.read_bytes()
    size = data.rindex(b'"size":') + len('"size":')  # the last record's
    newest.write_bytes(data[:size] + b"9" + data[size + 1 :])  # e.g. 247 -> 947: runs past the end of the file
    error = refused(tmp_path, newest)
    assert "whole trailer line" in error.reason


def test_a_damaged_segment_older_than_a_compacted_one_is_refused_and_repair_loses_nothing(tmp_path):
    three_segments(tmp_path)
    old = {path.name: path.read_bytes() for path in segment_files(tmp_path)}
    with open_batch(tmp_path) as batch:
        batch.compact()
    for name, data in old.items():  # a crash during the compaction left the old segments
        (tasks(tmp_path) / name).write_bytes(data)
    first = segment_files(tmp_path)[0]
    flip(first, document_offset(first))
    error = refused(tmp_path, first)
    assert "repairing loses nothing" in str(error)
    report = BatchStorage.repair(StorageFile(path=tmp_path))
    assert report.lost == [] and [path.name for path in report.moved] == [first.name + ".damaged"]
    with open_batch(tmp_path) as batch:
        assert values(batch) == {f"k{n}.json": "s1" if n < 5 else "s2" if n < 15 else "s3" for n in range(25)}


def test_a_checkpoint_read_from_a_damaged_segment_is_never_taken_as_missing(tmp_path):
    """Compaction and materialize read the segments again: damage that appears while the folder is open
    is refused there, never copied under a fresh digest, and the segment is kept."""
    three_segments(tmp_path)
    batch = open_batch(tmp_path)
    first = segment_files(tmp_path)[0]
    flip(first, document_offset(first))
    for rewrite in (batch.compact, batch.materialize):
        before = snapshot(tmp_path)
        with pytest.raises(DamagedSegmentError, match=first.name):
            rewrite()
        assert snapshot(tmp_path) == before
    batch.close()
    assert first.exists()


# -------------------------------------------------------------------------------------- the torn tail


def test_a_torn_newest_segment_is_still_dropped_on_open(tmp_path, caplog):
    three_segments(tmp_path)
    newest = segment_files(tmp_path)[-1]
    whole = newest.read_bytes()
    for torn in (whole[:10], whole[: len(whole) // 2], whole[:-1], whole[:-40], whole[: len(whole) // 2] + bytes(4096), b""):
        newest.write_bytes(torn)
        with caplog.at_level(logging.WARNING, logger="dotflow"):
            with open_batch(tmp_path) as batch:
                assert batch._backend.store.replayed == 2
                assert values(batch)["k20.json"] is None and values(batch)["k0.json"] == "s1"
        assert not newest.exists() and "none of its batch was acknowledged" in caplog.text
        caplog.clear()


def test_only_the_newest_segment_can_be_torn(tmp_path):
    """A torn segment followed by a newer one was not torn by a crash (its flush would have returned
    before the next segment was written): damage."""
    three_segments(tmp_path)
    second = segment_files(tmp_path)[1]
    data = second.read_bytes()
    second.write_bytes(data[:-1])
    refused(tmp_path, second)


def test_inspect_tells_every_prefix_of_a_segment_from_every_single_flipped_byte(tmp_path):
    document = encode_document("a.json", Context(storage={"n": 1}), None, None, revision="r")
    data, _ = batch_log.encode_segment(4, [("a.json", document, "r", None), ("b.json", None, None, None)])
    path = tmp_path / ".batch-0000000000000004.log"
    for cut in range(len(data)):
        path.write_bytes(data[:cut])
        found = batch_inspect.inspect_segment(path, 4)
        assert isinstance(found, batch_inspect.SegmentProblem) and found.torn, cut
    for offset in range(len(data) - 1):  # (the last byte, the trailer's newline, is taken for a cut)
        path.write_bytes(data[:offset] + bytes([data[offset] ^ 0x20]) + data[offset + 1 :])
        found = batch_inspect.inspect_segment(path, 4)
        assert isinstance(found, batch_inspect.SegmentProblem) and not found.torn, offset
    path.write_bytes(data)
    assert isinstance(batch_inspect.inspect_segment(path, 4), batch_log.Segment)
    assert not batch_inspect.inspect_segment(path, 5).torn  # type: ignore[union-attr]  # a renamed segment


# ------------------------------------------------------------------------------------------- repair


def test_repair_moves_a_damaged_older_segment_aside_and_deletes_what_it_held_newest(tmp_path):
    three_segments(tmp_path)
    second = segment_files(tmp_path)[1]
    flip(second, document_offset(second))
    damaged_bytes = second.read_bytes()
    report = BatchStorage.repair(StorageFile(path=tmp_path))
    kept = tasks(tmp_path) / (second.name + ".damaged")
    assert report.moved == [kept] and kept.read_bytes() == damaged_bytes and report.unread == []
    assert report.lost == sorted(f"k{n}.json" for n in range(5, 15))
    with open_batch(tmp_path) as batch:
        # k5-k9 do not go back to segment 1's older value: no checkpoint, so their tasks run again
        assert values(batch) == {f"k{n}.json": "s1" if n < 5 else None if n < 15 else "s3" for n in range(25)}
    assert kept.read_bytes() == damaged_bytes  # still there for a person, after later opens and closes


def test_repair_of_the_compacted_segment_keeps_the_later_segments(tmp_path):
    three_segments(tmp_path)
    with open_batch(tmp_path) as batch:
        batch.compact()
        batch.post("k24.json", Context(storage="later"))
    compacted = segment_files(tmp_path)[0]
    flip(compacted, document_offset(compacted))
    refused(tmp_path, compacted)
    report = BatchStorage.repair(StorageFile(path=tmp_path))
    assert len(report.lost) == 24  # k24's newest checkpoint is intact in the later segment
    with open_batch(tmp_path) as batch:
        assert values(batch) == {f"k{n}.json": "later" if n == 24 else None for n in range(25)}


def test_repair_of_a_segment_cut_short_names_the_keys_it_could_read(tmp_path):
    three_segments(tmp_path)
    second = segment_files(tmp_path)[1]
    data = second.read_bytes()
    cut = data.index(b"\n", data.index(b'{"key":"k10.json"')) + 20  # k5-k9 whole, k10's document cut
    second.write_bytes(data[:cut])
    report = BatchStorage.repair(StorageFile(path=tmp_path))
    assert report.unread == report.moved == [tasks(tmp_path) / (second.name + ".damaged")]
    assert report.lost == sorted(f"k{n}.json" for n in range(5, 11))
    with open_batch(tmp_path) as batch:
        found = values(batch)
        assert [found[f"k{n}.json"] for n in range(0, 11)] == ["s1"] * 5 + [None] * 6
        assert [found[f"k{n}.json"] for n in range(11, 15)] == [None] * 4  # unknown to the repair; no older value


def test_a_segment_holding_a_key_that_would_escape_is_damage_and_repair_moves_it_aside(tmp_path):
    document = encode_document("x", Context(storage=1), None, None)
    data, _ = batch_log.encode_segment(3, [("ok.json", document, None, None), ("../evil.json", document, None, None)])
    tasks(tmp_path).mkdir()
    (tasks(tmp_path) / ".batch.lock").touch()  # (a writable open creates the lock file it takes, if missing)
    crafted = tasks(tmp_path) / ".batch-0000000000000003.log"
    crafted.write_bytes(data)
    error = refused(tmp_path, crafted)
    assert error.offset == data.index(b'{"key":"../evil.json"') and "escape" in error.reason
    report = BatchStorage.repair(StorageFile(path=tmp_path))
    assert report.lost == ["ok.json"] and not (tmp_path / "evil.json").exists()
    with open_batch(tmp_path) as batch:
        assert list(batch.list_keys()) == []


def test_repair_of_a_healthy_folder_changes_no_checkpoint(tmp_path):
    three_segments(tmp_path)
    assert BatchStorage.repair(StorageFile(path=tmp_path)) == ([], [], [])
    with open_batch(tmp_path) as batch:
        assert values(batch)["k7.json"] == "s2"


def test_repair_needs_the_folder_to_itself(tmp_path):
    three_segments(tmp_path)
    with open_batch(tmp_path):
        with pytest.raises(batch_log.LockedFolderError):
            BatchStorage.repair(StorageFile(path=tmp_path))
    with pytest.raises(TypeError, match="StorageFile"):
        BatchStorage.repair(object())  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- read-only


def test_a_read_only_open_changes_nothing_even_with_a_torn_tail(tmp_path):
    three_segments(tmp_path)
    newest = segment_files(tmp_path)[-1]
    newest.write_bytes(newest.read_bytes()[:-5])
    os.unlink(tasks(tmp_path) / ".batch.lock")  # a folder copied without its lock file
    before = snapshot(tmp_path)
    with BatchStorage(StorageFile(path=tmp_path), read_only=True) as batch:
        assert batch.get("k3.json").storage == "s1" and batch.get("k20.json").storage is None
        assert len(list(batch.list_keys())) == 15
        with pytest.raises(RuntimeError, match="read_only"):
            batch.post("x.json", Context(storage=1))
        with pytest.raises(RuntimeError, match="read_only"):
            batch.delete("k3.json")
    assert snapshot(tmp_path) == before
    second = segment_files(tmp_path)[1]
    flip(second, document_offset(second))
    before = snapshot(tmp_path)
    with pytest.raises(DamagedSegmentError, match=second.name):
        BatchStorage(StorageFile(path=tmp_path), read_only=True)
    assert snapshot(tmp_path) == before


def test_read_only_is_for_a_storage_file():
    from dotflow.providers import StorageDefault

    with pytest.raises(ValueError, match="read_only"):
        BatchStorage(StorageDefault(), read_only=True)


# --------------------------------------------------------------------------------------- resume


RAN: list[int] = []


def make_step(number: int):
    @action
    def step(previous_context):
        RAN.append(number)
        return number

    step.__name__ = f"step{number}"
    return step


STEPS = [make_step(number) for number in range(12)]


def test_resume_after_damage_refuses_instead_of_running_flushed_tasks_again(tmp_path):
    RAN.clear()
    with open_batch(tmp_path, max_batch=4) as batch:
        flow = DotFlow(config=Config(storage=batch), workflow_id="damaged")
        flow.task.add(step=STEPS)
        flow.start()
    assert RAN == list(range(12)) and len(segment_files(tmp_path)) == 3
    second = segment_files(tmp_path)[1]  # the checkpoints of steps 4-7
    flip(second, document_offset(second))
    RAN.clear()
    with pytest.raises(DamagedSegmentError, match=second.name):
        open_batch(tmp_path, max_batch=4)
    assert RAN == []
    BatchStorage.repair(StorageFile(path=tmp_path))  # the user's choice: steps 4-7 run again
    with open_batch(tmp_path, max_batch=4) as batch:
        flow = DotFlow(config=Config(storage=batch), workflow_id="damaged")
        flow.task.add(step=STEPS)
        flow.start(resume=True)
        restored = [task.restored for task in flow.result_task()]
    assert restored[:4] == [True] * 4 and restored[4:8] == [False] * 4
    assert RAN[:4] == [4, 5, 6, 7] and 3 not in RAN
