"""StorageFile's lease files are reused (`.lease-spares/`, see dotflow/storage/file_leases.py): a
claimed task creates and deletes a lease, and creating a file costs far more than renaming one."""

from __future__ import annotations

import os
from pathlib import Path

from dotflow.storage.file import StorageFile
from dotflow.storage.file_leases import SPARES
from uow.leases import decode_lease


def lease_file(folder: Path, key: str) -> Path:
    return folder / "tasks" / f"{key}.lease"  # (StorageFile keeps its files in <path>/tasks, as 1.0.1 does)


def spares(folder: Path) -> list[Path]:
    return sorted((folder / "tasks" / SPARES).iterdir())


def test_a_deleted_lease_file_becomes_the_next_lease_without_a_new_file(tmp_path: Path) -> None:
    storage = StorageFile(path=tmp_path)
    first = storage.create_lease("wf-0-step", owner="worker-a:" + "x" * 40, ttl=30.0)
    assert first is not None
    inode = lease_file(tmp_path, "wf-0-step").stat().st_ino
    assert storage.delete_lease("wf-0-step", version=first.version)
    assert not lease_file(tmp_path, "wf-0-step").exists()
    assert [p.stat().st_ino for p in spares(tmp_path)] == [inode]  # kept, not removed

    second = storage.create_lease("wf-1-step", owner="worker-b", ttl=5.0)  # a shorter record than the last
    assert second is not None
    assert lease_file(tmp_path, "wf-1-step").stat().st_ino == inode  # the same file, written over
    assert spares(tmp_path) == []
    record = decode_lease(lease_file(tmp_path, "wf-1-step").read_bytes())  # no tail of the longer old record
    assert record is not None and record["owner"] == "worker-b"
    read = storage.read_lease("wf-1-step")
    assert read is not None and (read.owner, read.epoch, read.expires_at, read.version) == (
        "worker-b", 1, second.expires_at, second.version)  # fmt: skip
    assert storage.list_keys() == []  # neither leases nor spares are checkpoints


def test_a_create_that_finds_a_lease_keeps_its_spare_and_changes_nothing(tmp_path: Path) -> None:
    storage = StorageFile(path=tmp_path)
    held = storage.create_lease("k", owner="a", ttl=30.0)
    assert held is not None
    before = lease_file(tmp_path, "k").read_bytes()
    assert storage.create_lease("k", owner="b", ttl=30.0) is None
    assert lease_file(tmp_path, "k").read_bytes() == before
    [spare] = spares(tmp_path)  # written for nothing, kept for the next create
    inode = spare.stat().st_ino
    assert storage.create_lease("other", owner="c", ttl=30.0) is not None
    assert lease_file(tmp_path, "other").stat().st_ino == inode
    assert spares(tmp_path) == []


def test_another_worker_reuses_the_spares_one_left(tmp_path: Path) -> None:
    one, other = StorageFile(path=tmp_path), StorageFile(path=tmp_path)  # two workers on one folder
    lease = one.create_lease("k", owner="a", ttl=30.0)
    assert lease is not None and one.delete_lease("k", version=lease.version)
    [spare] = spares(tmp_path)
    inode = spare.stat().st_ino
    assert other.create_lease("j", owner="b", ttl=30.0) is not None
    assert lease_file(tmp_path, "j").stat().st_ino == inode
    # the first worker still remembers the spare: gone, so it makes another file
    assert one.create_lease("i", owner="a", ttl=30.0) is not None
    assert decode_lease(lease_file(tmp_path, "j").read_bytes())["owner"] == "b"  # type: ignore[index]


def test_a_spare_still_linked_as_a_live_lease_is_never_written_over(tmp_path: Path) -> None:
    storage = StorageFile(path=tmp_path)
    live = storage.create_lease("live", owner="a", ttl=30.0)
    assert live is not None
    # A worker killed between linking its spare as the lease and removing the spare's name leaves this:
    crash_left = tmp_path / "tasks" / SPARES / "left-by-a-crash"
    os.link(lease_file(tmp_path, "live"), crash_left)
    before = lease_file(tmp_path, "live").read_bytes()

    fresh = StorageFile(path=tmp_path)  # a worker that finds that spare
    assert fresh.create_lease("next", owner="b", ttl=30.0) is not None
    assert lease_file(tmp_path, "live").read_bytes() == before
    read = fresh.read_lease("live")
    assert read is not None and (read.owner, read.version) == ("a", live.version)
    assert not crash_left.exists()  # only its spare name is removed
    assert lease_file(tmp_path, "next").stat().st_ino != lease_file(tmp_path, "live").stat().st_ino


def test_a_spares_folder_that_is_a_symlink_is_never_written_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / SPARES).symlink_to(outside)  # a hostile link: it would lead out of the folder
    storage = StorageFile(path=tmp_path)
    for number in range(3):
        lease = storage.create_lease(f"k{number}", owner="a", ttl=30.0)
        assert lease is not None
        assert storage.create_lease(f"k{number}", owner="b", ttl=30.0) is None  # held: refused, nothing kept
        assert storage.delete_lease(f"k{number}", version=lease.version)
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "tasks").iterdir()) == [".lease-spares", ".lock"]  # nothing left behind
