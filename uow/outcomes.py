"""The names a unit's state, a journal entry's outcome and a `verify` finding can have: defined once.

A unit of work is ACTIVE, then COMMITTING while it writes, then ends in one of the FINAL_OUTCOMES.
The journal records a unit as PREPARED just before its storage writes (see `uow.journal`), then its
final outcome: JOURNAL_OUTCOMES are the values of its `outcome` column. `Journal.verify` sorts every
key into one of VERIFY_STATUSES; PROBLEMS are the ones an audit fails on. CLAIM_EVENTS are what
the journal records of a claim (a lease a worker takes before it runs a task or a workflow).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ACTIVE",
    "BACKED",
    "CHANGED",
    "CLAIM_EVENTS",
    "CLAIM_EXPIRED",
    "CLAIM_LOST",
    "CLAIM_RELEASED",
    "CLAIM_RENEWED_LATE",
    "CLAIM_TAKEN",
    "CLAIM_TAKEN_OVER",
    "COMMITTED",
    "COMMITTING",
    "CONFLICT",
    "DELETE_OPERATION",
    "FAILED",
    "FINAL_OUTCOMES",
    "JOURNAL_OUTCOMES",
    "MISSING",
    "PREPARED",
    "PROBLEMS",
    "PUT_OPERATION",
    "ROLLED_BACK",
    "RUN_COMPLETED",
    "RUN_FAILED",
    "RUN_STATUSES",
    "RUN_UNFINISHED",
    "TASK_ADOPTED",
    "TASK_COMPLETED",
    "TASK_COUNTS",
    "TASK_FAILED",
    "TASK_RESTORED",
    "UNBACKED",
    "UNCONFIRMED",
    "VERIFY_STATUSES",
]

# A unit's state
ACTIVE: Final = "active"
COMMITTING: Final = "committing"
COMMITTED: Final = "committed"
ROLLED_BACK: Final = "rolled_back"
FAILED: Final = "failed"
CONFLICT: Final = "conflict"
FINAL_OUTCOMES: Final = (COMMITTED, ROLLED_BACK, FAILED, CONFLICT)

# A journal entry's outcome: a final one, or PREPARED (the intent, recorded before the writes)
PREPARED: Final = "prepared"
JOURNAL_OUTCOMES: Final = (*FINAL_OUTCOMES, PREPARED)

# What `Journal.verify` finds for a key
BACKED: Final = "backed"  # the stored value is the one the newest committed entry wrote (or deleted)
UNCONFIRMED: Final = "unconfirmed"  # stored by a unit whose outcome was never confirmed: the crash window
MISSING: Final = "missing"  # a committed entry wrote it, the storage does not have it
CHANGED: Final = "changed"  # the storage holds something else than the newest committed entry wrote
UNBACKED: Final = "unbacked"  # present in the storage, no journal entry wrote it
PROBLEMS: Final = (MISSING, CHANGED, UNBACKED)
VERIFY_STATUSES: Final = (BACKED, UNCONFIRMED, *PROBLEMS)

# What a journal write row did to its key
# -- how a run ended (`RunPersistence.end`) --------------------------------------------------------
RUN_COMPLETED: Final = "completed"
RUN_FAILED: Final = FAILED
RUN_UNFINISHED: Final = "unfinished"  # a run the journal saw begin and never end (running, or stopped by a crash)
RUN_STATUSES: Final = (RUN_COMPLETED, RUN_FAILED, RUN_UNFINISHED)

# -- a run's tasks, counted by how they ended (`RunPersistence.end(counts=...)`) --------------------
TASK_COMPLETED: Final = RUN_COMPLETED  # ran, and its checkpoint was committed
TASK_RESTORED: Final = "restored"  # restored from its checkpoint, not run
TASK_FAILED: Final = FAILED
TASK_ADOPTED: Final = "adopted"  # ran, but another run committed first: its checkpoint was taken
TASK_COUNTS: Final = (TASK_COMPLETED, TASK_RESTORED, TASK_FAILED, TASK_ADOPTED)

PUT_OPERATION: Final = "put"
DELETE_OPERATION: Final = "delete"

# -- what happened to a claim (a row of the journal's claim table; see docs/claims.md) -------------
CLAIM_TAKEN: Final = "taken"  # a lease created where there was none (epoch 1)
CLAIM_RENEWED_LATE: Final = "renewed_late"  # renewed more than half an interval after it was due
CLAIM_EXPIRED: Final = "expired"  # a lease found expired and taken over: the previous owner's, its epoch
CLAIM_TAKEN_OVER: Final = "taken_over"  # ours, in the next epoch, after CLAIM_EXPIRED
CLAIM_RELEASED: Final = "released"  # deleted by its owner (or by the commit's transaction)
CLAIM_LOST: Final = "lost"  # our renewal, release or commit found it in another worker's hands
CLAIM_EVENTS: Final = (CLAIM_TAKEN, CLAIM_RENEWED_LATE, CLAIM_EXPIRED, CLAIM_TAKEN_OVER, CLAIM_RELEASED, CLAIM_LOST)
