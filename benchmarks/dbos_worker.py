"""One measurement of the durable-execution peer, DBOS Transact, in its own venv; prints one JSON line.

    python dbos_worker.py --tasks N

One `@DBOS.workflow` calls N `@DBOS.step`s in sequence, each returning the same small dict as the
dotflow workloads (`{"n", "total", "payload"}`); DBOS records every step's output in its system
database, here its default SQLite file (a fresh temporary folder is the working directory). Only the
workflow call is timed (launch and shutdown are not), divided by N. DBOS's own logging is set to
WARNING.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time

PAYLOAD = "x" * 32


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, required=True)
    args = parser.parse_args()
    tasks = args.tasks

    folder = tempfile.mkdtemp(prefix="dotflow-perf-dbos-")
    os.chdir(folder)  # DBOS's default SQLite system database is created in the working directory
    try:
        from dbos import DBOS

        DBOS(config={"name": "bench", "log_level": "WARNING", "run_admin_server": False})

        @DBOS.step()
        def step(prev: dict) -> dict:
            n = prev["n"] + 1
            return {"n": n, "total": prev["total"] + n, "payload": PAYLOAD}

        @DBOS.workflow()
        def workflow(count: int) -> dict:
            value = {"n": 0, "total": 0}
            for _ in range(count):
                value = step(value)
            return value

        DBOS.launch()
        begin = time.perf_counter()
        result = workflow(tasks)
        ended = time.perf_counter()
        databases = [name for name in os.listdir(folder) if name.endswith((".sqlite", ".db"))]
        DBOS.destroy()
    finally:
        os.chdir("/")
        shutil.rmtree(folder, ignore_errors=True)
    from importlib.metadata import version

    print(json.dumps({
        "lib": "dbos",
        "workload": "dbos",
        "tasks": tasks,
        "version": version("dbos"),
        "run_us_per_task": (ended - begin) * 1e6 / tasks,
        "ok": result == {"n": tasks, "total": tasks * (tasks + 1) // 2, "payload": PAYLOAD} and bool(databases),
        "sqlite_files": databases,
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "python": platform.python_version(),
    }), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
