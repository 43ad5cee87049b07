"""The command line shows what the journal recorded of claims: `dotflow journal claims` lists them,
`show --run` gives a run's, and the timeline marks them on each task's lane. User text is printed as
it is (never read as markup), and every command only reads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from dotflow.cli import main
from tests.support import tree
from uow import ClaimEvent, Journal, RunPersistence, UnitSnapshot
from uow.outcomes import (
    CLAIM_EXPIRED,
    CLAIM_LOST,
    CLAIM_RELEASED,
    CLAIM_RENEWED_LATE,
    CLAIM_TAKEN,
    CLAIM_TAKEN_OVER,
    COMMITTED,
    RUN_COMPLETED,
)

RUN = "c" * 32
START = datetime(2026, 12, 7, 6, 0, tzinfo=timezone.utc).timestamp()
NASTY = ["[i]", "[/x]", "two\nlines"]  # task ids that rich would read as markup, and a line break



@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    """A journal with one run of workflow "wf[bold]": a unit per nasty task id, and the claims of a
    takeover, a late renewal, a release, a lost lease and a workflow claim."""
    location = f"sqlite:///{tmp_path / 'journal.db'}"
    journal = Journal(location)
    run = RunPersistence("wf[bold]", run_id=RUN, mode="parallel")
    run.started_at = START
    journal.begin_run(run)
    run.ended_at, run.status = START + 2, RUN_COMPLETED
    journal.end_run(run)
    events = [ClaimEvent(RUN, "wf[bold]", None, "wf[bold]", CLAIM_TAKEN, "host:1:[red]me", 1, START)]
    for number, task in enumerate(NASTY):
        at = START + 0.1 + number * 0.5
        key = f"wf-{number}"
        journal.record(UnitSnapshot(id=f"{number:032d}", state=COMMITTED, workflow_id="wf[bold]", task_id=task, attempt=1,
                                    started_at=datetime.fromtimestamp(at + 0.05, timezone.utc),
                                    finished_at=datetime.fromtimestamp(at + 0.3, timezone.utc), error_text=None,
                                    run_id=RUN))  # fmt: skip
        events += [
            ClaimEvent(RUN, "wf[bold]", task, key, CLAIM_EXPIRED, "dead:2:[/old]", 1, at, late=2.5),
            ClaimEvent(RUN, "wf[bold]", task, key, CLAIM_TAKEN_OVER, "host:1:[red]me", 2, at, "dead:2:[/old]", 2.5),
            ClaimEvent(RUN, "wf[bold]", task, key, CLAIM_RENEWED_LATE, "host:1:[red]me", 2, at + 0.2, late=6.0),
            ClaimEvent(RUN, "wf[bold]", task, key, CLAIM_RELEASED, "host:1:[red]me", 2, at + 0.35),
        ]
    events.append(ClaimEvent(RUN, "wf[bold]", "[i]", "wf-0", CLAIM_LOST, "host:1:[red]me", 2, START + 1.9,
                             previous_owner="<b>thief</b>:3:x"))  # fmt: skip
    events.append(ClaimEvent(RUN, "wf[bold]", None, "wf[bold]", CLAIM_RELEASED, "host:1:[red]me", 1, START + 2))
    journal.record_claims(events)
    journal.close()
    yield location


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_claims_lists_every_event_with_user_text_verbatim(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = cli(capsys, "journal", "claims", "--journal", url)
    assert status == 0 and err == ""
    for text in ("[i]", "[/x]", "two", "lines", "host:1:[red]me", "dead:2:[/old]", "<b>thief</b>:3:x", "(workflow)",
                 "2.5 s", "6.0 s"):
        assert text in out, text
    for event in (CLAIM_TAKEN, CLAIM_EXPIRED, CLAIM_TAKEN_OVER, CLAIM_RENEWED_LATE, CLAIM_RELEASED, CLAIM_LOST):
        assert event in out
    status, out, _ = cli(capsys, "journal", "claims", "--journal", url, "--json")
    listed = json.loads(out)
    assert status == 0 and len(listed) == 3 * 4 + 3
    assert listed[0] == {"run_id": RUN, "workflow_id": "wf[bold]", "task_id": None, "key": "wf[bold]", "event": CLAIM_TAKEN,
                         "owner": "host:1:[red]me", "epoch": 1, "at": "2026-12-07T06:00:00.000+00:00",
                         "previous_owner": None, "late_seconds": None}  # fmt: skip
    assert [e["task_id"] for e in listed if e["event"] == CLAIM_TAKEN_OVER] == NASTY
    assert {e["previous_owner"] for e in listed if e["event"] == CLAIM_TAKEN_OVER} == {"dead:2:[/old]"}


@pytest.mark.parametrize(
    ("filters", "count"),
    [
        (["--run", "cccc"], 15),
        (["--workflow-id", "wf[bold]"], 15),
        (["--task", "two\nlines"], 4),
        (["--event", CLAIM_LOST], 1),
        (["--task", "[i]", "--event", CLAIM_RELEASED], 1),
        (["--limit", "2", "--offset", "14"], 1),
    ],
)
def test_claims_filters(url: str, capsys: pytest.CaptureFixture[str], filters: list[str], count: int) -> None:
    status, out, _ = cli(capsys, "journal", "claims", "--journal", url, *filters, "--json")
    assert status == 0 and len(json.loads(out)) == count


def test_claims_pages_and_says_so(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "journal", "claims", "--journal", url, "--limit", "5")
    assert status == 0 and "showing 1-5 of 15 claim events (--limit, --offset for more)" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--workflow-id", "nope"], "the journal has no workflow 'nope'"),
        (["--run", "0000"], "no run with id '0000'"),
        (["--event", "stolen"], "invalid choice: 'stolen'"),
    ],
)
def test_what_cannot_be_answered_is_an_error(url: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    status, out, err = cli(capsys, "journal", "claims", "--journal", url, *argv)
    assert status == 2 and out == "" and err.startswith("dotflow: error: ") and message in err


def test_a_journal_that_does_not_exist_is_an_error_and_is_not_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = cli(capsys, "journal", "claims", "--journal", f"sqlite:///{tmp_path / 'none.db'}")
    assert status == 2 and out == "" and "no journal at" in err
    assert not (tmp_path / "none.db").exists()


def test_reading_claims_changes_nothing(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = tree(tmp_path)
    for argv in (["claims"], ["claims", "--run", RUN], ["show", "--run", RUN], ["timeline", "--workflow-id", "wf[bold]"]):
        status, _, err = cli(capsys, "journal", *argv, "--journal", url)
        assert status == 0, (argv, err)
    assert tree(tmp_path) == before


def test_show_run_lists_its_claims(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "journal", "show", "--run", RUN, "--journal", url)
    assert status == 0 and "dead:2:[/old]" in out and CLAIM_TAKEN_OVER in out
    status, out, _ = cli(capsys, "journal", "show", "--run", RUN, "--journal", url, "--json")
    shown = json.loads(out)
    assert len(shown["units"]) == 3 and len(shown["claims"]) == 15


def test_the_timeline_marks_claims_on_each_lane_and_in_the_legend(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "t.html"
    status, out, _ = cli(capsys, "journal", "timeline", "--journal", url, "--workflow-id", "wf[bold]", "--html", str(page))
    assert status == 0
    assert "3 unit(s) and 15 claim event(s) in 1 run(s)" in out
    assert "(workflow claim)" in out and "[i]" in out and "[/x]" in out
    assert "claims: [ taken  ~ renewed_late  ! expired  » taken_over  ] released  × lost" in out
    lanes = [line for line in out.splitlines() if "claim: " in line]
    assert len(lanes) == 4  # a task's lane (three) and the workflow's claim
    assert any("claim: !1 »2 ~2 ]2 ×2" in line for line in lanes)  # "[i]": taken over, late, released, then lost
    marks = "".join(line.split("│")[-2] for line in out.splitlines() if line.count("│") >= 4)
    for mark in ("[", "!", "»", "~", "]", "×", "█"):
        assert mark in marks, mark
    html = page.read_text()
    assert html.count('data-claim="taken_over"') == 3 + 1 and html.count('data-claim="lost"') == 1 + 1  # (+ the legend)
    assert 'data-claim="renewed_late"' in html and 'data-outcome="committed"' in html
    assert "dead:2:[/old]" in html and "two\nlines" in html and "wf[bold]" in html
    assert "<script" not in html and ">lost<" in html  # the claims legend names every event
    assert "&lt;b&gt;thief&lt;/b&gt;:3:x" in html and "<b>thief" not in html  # escaped in its tooltip


def test_a_run_whose_tasks_were_all_adopted_still_has_a_timeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Claims but no unit: a worker that waited for each lease and restored what the holder committed."""
    location = f"sqlite:///{tmp_path / 'journal.db'}"
    journal = Journal(location)
    run = RunPersistence("wf", run_id=RUN, mode="sequential")
    journal.begin_run(run)
    journal.record_claims([ClaimEvent(RUN, "wf", "0-a", "wf-0-a", CLAIM_TAKEN, "me", 3, START),
                           ClaimEvent(RUN, "wf", "0-a", "wf-0-a", CLAIM_RELEASED, "me", 3, START + 0.01)])  # fmt: skip
    journal.close()
    status, out, _ = cli(capsys, "journal", "timeline", "--journal", location, "--run", RUN)
    assert status == 0 and "0 unit(s) and 2 claim event(s)" in out and "claim: [3 ]3" in out
