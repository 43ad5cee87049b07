#!/usr/bin/env bash
# Set up .venv with what the demo needs (the package with the `sql` extra, for the journal; a .venv that scripts/test.sh
# made is used as it is) and run the demo pipeline (file checkpoints in ./demo-output).
EXTRAS=sql SUFFICES=dev PROGRESS=1 source "$(dirname "$0")/venv.sh"
exec "$VENV/bin/python" examples/demo.py "$@"
