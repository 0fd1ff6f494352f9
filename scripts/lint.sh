#!/usr/bin/env bash
# The lint and type gate (what `tox -e lint` runs): ruff over the whole tree, then mypy on the
# paths and settings in pyproject.toml. Needs the `lint` extra: pip install -e '.[lint]'.
# Both always run, so one pass shows every finding; the exit status is non-zero if either fails.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
python3 -m ruff check . || status=1
python3 -m mypy || status=1
exit "$status"
