#!/usr/bin/env bash
# Build the wheel, install it with its extras into a new virtual environment outside the checkout,
# and run scripts/wheel_smoke.py there (from a temporary folder, nothing of the checkout on sys.path).
#   bash scripts/wheel_smoke.sh            (PYTHON=python3.12 bash scripts/wheel_smoke.sh for another Python)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/dotflow-wheel-smoke.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

echo "wheel smoke: building the wheel"
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$WORK/dist" "$ROOT"
wheel="$(ls "$WORK"/dist/dotflow_uow-*.whl)"
echo "wheel smoke: installing $(basename "$wheel")[s3,gcs,sql,postgres] into a new venv"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel[s3,gcs,sql,postgres]"
cp "$ROOT/scripts/wheel_smoke.py" "$WORK/wheel_smoke.py"
cd "$WORK"
exec "$WORK/venv/bin/python" -I "$WORK/wheel_smoke.py"
