#!/usr/bin/env bash
# Set up .venv and run the demo pipeline (file checkpoints in ./demo-output).
EXTRAS=dev source "$(dirname "$0")/venv.sh"
exec .venv/bin/python examples/demo.py "$@"
