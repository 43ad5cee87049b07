"""A pipeline run as its own process by test_resume_across_processes.py.

usage: python -m tests.integration.resumable_pipeline STORAGE_DIR WORKFLOW_ID RUN_LOG [--fail-at STEP] [--mode MODE]
Each step appends its name to RUN_LOG when it runs; the final state is printed as JSON.
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from decimal import Decimal

from dotflow import Config, DotFlow, action
from dotflow.providers import StorageFile

ARGS = argparse.Namespace()


def ran(name: str) -> None:
    with open(ARGS.run_log, "a") as log:
        log.write(name + "\n")
    if ARGS.fail_at == name:
        raise RuntimeError(f"{name} fails on purpose")


@action
def extract():
    ran("extract")
    return [{"sku": "A", "qty": 2, "price": Decimal("9.99")}, {"sku": "B", "qty": 1, "price": Decimal("0.50")}]


@action
def transform(previous_context):
    ran("transform")
    return {row["sku"]: row["qty"] * row["price"] for row in previous_context.storage}


@action
def load(previous_context):
    ran("load")
    return {"day": date(2026, 11, 27), "total": sum(previous_context.storage.values())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("storage_dir")
    parser.add_argument("workflow_id")
    parser.add_argument("run_log")
    parser.add_argument("--fail-at", default=None)
    parser.add_argument("--mode", default="sequential")
    parser.parse_args(namespace=ARGS)

    flow = DotFlow(config=Config(storage=StorageFile(path=ARGS.storage_dir)), workflow_id=ARGS.workflow_id)
    flow.task.add(step=[extract, transform, load])
    manager = flow.start(resume=True, mode=ARGS.mode)
    if ARGS.mode == "background":
        manager.thread.join()
    print(json.dumps([
        {"task_id": t.task_id, "status": t.status, "restored": t.restored, "value": repr(t.current_context.storage)}
        for t in flow.result_task()
    ]))


if __name__ == "__main__":
    main()
