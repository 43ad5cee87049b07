#!/usr/bin/env bash
# Set up .venv and run the whole test suite. Extra arguments go to pytest.
EXTRAS=dev source "$(dirname "$0")/venv.sh"
exec .venv/bin/python -m pytest "$@"
