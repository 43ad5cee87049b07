#!/usr/bin/env bash
# Set up the venv (.venv, or $VENV) and run the whole test suite. Extra arguments go to pytest.
EXTRAS=dev source "$(dirname "$0")/venv.sh"
exec "$VENV/bin/python" -m pytest "$@"
