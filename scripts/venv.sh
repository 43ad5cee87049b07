# Sourced by the other scripts: create (or reuse) .venv at the repo root and install the project
# (editable) with the extras in $EXTRAS. Reinstalls only when pyproject.toml or the extras change.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
EXTRAS="${EXTRAS:-dev}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(cat pyproject.toml <(echo "$EXTRAS") | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[${EXTRAS}]" 2>/tmp/dotflow-uow-pip.log \
        || { cat /tmp/dotflow-uow-pip.log >&2; exit 1; }
    rm -f .venv/.installed-*
    touch "$stamp"
fi
