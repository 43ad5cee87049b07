#!/usr/bin/env bash
# Run benchmarks/workload.py under this project and under the published dotflow 1.0.1, interleaved,
# and print a comparison table (benchmarks/compare.py).
#
#   bash benchmarks/run.sh                 # defaults: ROUNDS=10 REPEATS=5 TASKS=50 PARALLEL_TASKS=4
#   ROUNDS=4 TASKS=200 bash benchmarks/run.sh
#
# - dotflow 1.0.1 also imports as `dotflow`, so it lives in its own venv, benchmarks/.venv-dotflow-1.0.1
#   (created on first use with `pip install dotflow==1.0.1`, reused afterwards).
# - This project's venv (.venv at the repo root) is created or reused by scripts/venv.sh (EXTRAS=dev).
# - Each round runs one process per library, the order alternating (ours first in odd rounds,
#   1.0.1 first in even ones), so both see the same machine load. Each process runs every scenario
#   REPEATS times. Raw JSON lines go to benchmarks/results/<stamp>.jsonl, the libraries' stderr
#   (1.0.1 logs every status change there) to benchmarks/results/<stamp>.<lib>.stderr.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PYTHON="${PYTHON:-python3}"
ROUNDS="${ROUNDS:-10}"
REPEATS="${REPEATS:-5}"
TASKS="${TASKS:-50}"
PARALLEL_TASKS="${PARALLEL_TASKS:-4}"

OLD_VENV="$HERE/.venv-dotflow-1.0.1"
OLD_PY="$OLD_VENV/bin/python"
OURS_PY="$ROOT/.venv/bin/python"

# --- dotflow 1.0.1, in its own venv (-I everywhere: never import from the current folder, which
# may be the repo root and hold this project's dotflow/ and uow/) ---------------------------------
if [ ! -x "$OLD_PY" ]; then
    "$PYTHON" -m venv "$OLD_VENV"
fi
if ! "$OLD_PY" -I -c 'import sys, dotflow; sys.exit(dotflow.__version__ != "1.0.1")' 2>/dev/null; then
    echo "installing dotflow==1.0.1 into $OLD_VENV ..." >&2
    pip_log="$(mktemp)"
    "$OLD_PY" -m pip install --quiet --disable-pip-version-check "dotflow==1.0.1" >"$pip_log" 2>&1 \
        || { cat "$pip_log" >&2; rm -f "$pip_log"; exit 1; }
    rm -f "$pip_log"
fi

# --- this project, in the repo's .venv (scripts/venv.sh cds to the root and sets shell options:
# run it in a subshell so neither leaks here) -------------------------------------------------------
( export EXTRAS=dev PYTHON; source "$ROOT/scripts/venv.sh" )

# --- pin this project's code for the whole run ----------------------------------------------------
# The editable install follows the work tree, which may be edited while the benchmark runs (a round
# that imports a half-saved tree measures nothing). So by default dotflow/ and uow/ are copied once
# to a temporary folder put first on PYTHONPATH; the venv still provides the interpreter.
# BENCH_REV=<commit> takes them from that commit instead (`git archive`, read-only), to measure a
# committed state; BENCH_SNAPSHOT=0 runs against the live tree.
OURS_SRC="$ROOT"
if [ -n "${BENCH_REV:-}" ] || [ "${BENCH_SNAPSHOT:-1}" != 0 ]; then
    OURS_SRC="$(mktemp -d "${TMPDIR:-/tmp}/dotflow-bench-ours.XXXXXX")"
    trap 'rm -rf "$OURS_SRC"' EXIT
fi
if [ -n "${BENCH_REV:-}" ]; then
    git -C "$ROOT" archive "$BENCH_REV" dotflow uow | tar -xf - -C "$OURS_SRC"
    source_desc="commit $(git -C "$ROOT" rev-parse --short "$BENCH_REV") (git archive)"
else
    [ "$OURS_SRC" = "$ROOT" ] || (cd "$ROOT" && tar --exclude=__pycache__ -cf - dotflow uow) | tar -xf - -C "$OURS_SRC"
    source_desc="work tree at commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    source_desc+=" + $(git -C "$ROOT" status --porcelain -- dotflow uow 2>/dev/null | wc -l | tr -d ' ')"
    source_desc+=" uncommitted change(s) under dotflow/ uow/"
fi

# --- make sure each interpreter imports the library we think it does ------------------------------
(cd "$HERE" && PYTHONPATH="$OURS_SRC" "$OURS_PY" -s - "$OURS_SRC" <<'PY'
import os, sys, dotflow, uow
src = os.path.realpath(sys.argv[1])
if not os.path.realpath(dotflow.__file__).startswith(src + os.sep):
    sys.exit(f"{sys.executable} imports dotflow from {dotflow.__file__}, not from {src}")
PY
)
"$OLD_PY" -I - "$OLD_VENV" <<'PY'
import os, sys, dotflow
venv = os.path.realpath(sys.argv[1])
if not os.path.realpath(dotflow.__file__).startswith(venv + os.sep):
    sys.exit(f"{sys.executable} imports dotflow from {dotflow.__file__}, not from {venv}")
try:
    import uow  # noqa: F401
except ImportError:
    pass
else:
    sys.exit(f"{sys.executable} can import uow: it is not a clean dotflow 1.0.1 venv")
PY

# --- interleaved rounds ----------------------------------------------------------------------------
OUT="$HERE/results"
mkdir -p "$OUT"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
results="$OUT/$stamp.jsonl"
: >"$results"
args=(--tasks "$TASKS" --parallel-tasks "$PARALLEL_TASKS" --repeats "$REPEATS")

run_ours() {  # run_ours ROUND
    PYTHONPATH="$OURS_SRC" "$OURS_PY" -s "$HERE/workload.py" "${args[@]}" --round "$1"
}
run_old() {  # run_old ROUND
    "$OLD_PY" -I "$HERE/workload.py" "${args[@]}" --round "$1"
}
run_one() {  # run_one ours|dotflow-1.0.1 ROUND
    local fn=run_ours
    [ "$1" = ours ] || fn=run_old
    if ! "$fn" "$2" >>"$results" 2>>"$OUT/$stamp.$1.stderr"; then
        echo "workload failed under $1 (round $2); see $OUT/$stamp.$1.stderr" >&2
        tail -20 "$OUT/$stamp.$1.stderr" >&2
        exit 1
    fi
}

echo "machine: $(nproc) cores, $(uname -srm); $("$OURS_PY" -V 2>&1)" >&2
echo "ours: $source_desc, imported from $OURS_SRC" >&2
echo "rounds=$ROUNDS repeats=$REPEATS tasks=$TASKS parallel_tasks=$PARALLEL_TASKS -> $results" >&2
for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2)); then
        run_one ours "$round"
        run_one dotflow-1.0.1 "$round"
    else
        run_one dotflow-1.0.1 "$round"
        run_one ours "$round"
    fi
    echo "round $round/$ROUNDS done" >&2
done

"$OURS_PY" -s "$HERE/compare.py" "$results"
