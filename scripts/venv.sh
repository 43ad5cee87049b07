# Sourced by the other scripts: create (or reuse) a virtual environment at the repo root and install
# the project (editable) with the extras in $EXTRAS. Reinstalls only when pyproject.toml, setup.py or
# the extras change.
#   PYTHON     the interpreter that creates it (default python3)
#   VENV       its folder (default .venv; CI also makes .venv-3.10 and .venv-3.13)
#   EXTRAS     the extras to install, comma-separated (default dev; empty: the package alone)
#   SUFFICES   extras whose up-to-date install is also good enough (the demo takes a dev install)
#   PROGRESS=1 shows pip's progress instead of keeping its output in a log
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
EXTRAS="${EXTRAS-dev}"
stamp_of() { echo "$VENV/.installed-$(cat pyproject.toml setup.py <(echo "$1") | sha256sum | cut -c1-16)"; }
if [ -n "${SUFFICES:-}" ] && [ -f "$(stamp_of "$SUFFICES")" ]; then
    EXTRAS="$SUFFICES"
fi
if [ ! -x "$VENV/bin/python" ]; then
    [ "${PROGRESS:-0}" = 1 ] && echo "creating $VENV with $("$PYTHON" --version)"
    "$PYTHON" -m venv "$VENV"
fi
stamp="$(stamp_of "$EXTRAS")"
if [ ! -f "$stamp" ]; then
    requirement=".${EXTRAS:+[$EXTRAS]}"
    if [ "${PROGRESS:-0}" = 1 ]; then
        echo "installing dotflow-uow${EXTRAS:+[$EXTRAS]} (editable) and its dependencies into $VENV"
        "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar on -e "$requirement"
    else
        log="$(mktemp "${TMPDIR:-/tmp}/dotflow-uow-pip.XXXXXX")"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$requirement" 2>"$log" \
            || { cat "$log" >&2; rm -f "$log"; exit 1; }
        rm -f "$log"
    fi
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi
