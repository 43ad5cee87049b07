#!/usr/bin/env bash
# Type-check both packages with the configuration in pyproject.toml ([tool.mypy]: strict rules).
EXTRAS=dev source "$(dirname "$0")/venv.sh"
exec "$VENV/bin/python" -m mypy dotflow uow "$@"
