#!/usr/bin/env bash
# The lint and type gate (what `tox -e lint` runs): ruff over the whole tree, then mypy on the
# paths and settings in pyproject.toml. Needs the `lint` extra (scripts/install.sh --tests
# installs it); the interpreter is $PYTHON, else this checkout's .venv, else python3.
# Both always run, so one pass shows every finding; the exit status is non-zero if either fails.
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
if [ -z "${PYTHON:-}" ] && [ -z "${VIRTUAL_ENV:-}" ] && [ -x .venv/bin/python ]; then
  py=.venv/bin/python
fi
status=0
"$py" -m ruff check . || status=1
"$py" -m mypy || status=1
exit "$status"
