#!/usr/bin/env bash
# Install pytest-axp with its test extras into a virtual environment, never into a system
# interpreter (PEP 668 forbids that on Debian 12 / Ubuntu 23.04+): the one already active, if
# any, else .venv/ in this checkout, made with $PYTHON (default: python3 on PATH).
#   --engine  also make sure a Docker engine answers, seed the sandbox's base image and build
#             the sandbox image (the steps that need root on a fresh machine).
#   --tests   also install the lint tools (ruff, mypy: the `lint` extra) and what the test
#             suite drives besides Python packages (scripts/test-services.sh): Chromium,
#             iproute2 and sshd for the engine-pool tests, a running PostgreSQL.
# Running it again is quick: nothing is reinstalled unless pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "install.sh: $*" >&2; exit 1; }

engine=0
tests=0
for arg in "$@"; do
  case "$arg" in
    --engine) engine=1 ;;
    --tests) tests=1 ;;
    *) echo "install.sh: unknown argument '$arg' (options: --engine, --tests)" >&2; exit 2 ;;
  esac
done

if [ -z "${PYTHON:-}" ] && [ -n "${VIRTUAL_ENV:-}" ]; then
  py="$VIRTUAL_ENV/bin/python"
else
  py="${PYTHON:-python3}"
fi
command -v "$py" >/dev/null 2>&1 \
  || die "no '$py' found: install Python >= 3.11 (Debian/Ubuntu: apt-get install python3) or name one with PYTHON=/path/to/python3"
version=$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null) || version=""
[[ "$version" =~ ^([0-9]+)\.([0-9]+)\. ]] || die "'$py' does not run as a Python interpreter"
major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
if (( major < 3 || (major == 3 && minor < 11) )); then
  die "pytest-axp needs Python >= 3.11, but $py is $version: install a newer Python and rerun with PYTHON=/path/to/python3.11 (or later)"
fi

# An active virtual environment is used as it is; otherwise .venv/ is made (or kept).
if [ "$("$py" -c 'import sys; print(sys.prefix != sys.base_prefix)')" = True ]; then
  target="$py"
else
  venv_ok() {
    [ -x .venv/bin/python ] \
      && .venv/bin/python -c 'import sys, pip; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
  }
  if ! venv_ok; then
    if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
      pkg="python$major.$minor-venv"
      if [ -f /etc/debian_version ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "installing $pkg: $py has no venv/ensurepip"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "$pkg" >/dev/null
      elif [ -f /etc/debian_version ]; then
        die "$py cannot make a virtual environment: install its venv module (sudo apt-get install $pkg) and rerun"
      else
        die "$py cannot make a virtual environment (no venv/ensurepip module): install a Python with it and rerun with PYTHON=/path/to/python3"
      fi
    fi
    echo "making the virtual environment .venv with $py ($version)"
    # A half-made .venv (no pip) from an earlier failed attempt is replaced.
    "$py" -m venv --clear .venv || { rm -rf .venv; die "'$py -m venv .venv' failed (see above)"; }
  fi
  target=.venv/bin/python
fi

extras=test
(( tests )) && extras=test,lint
prefix=$("$target" -c 'import sys; print(sys.prefix)')
# What an install here depends on: the checkout it points at, the declared dependencies and
# the extras asked for.
stamp="$PWD $(cksum < pyproject.toml) $extras"
if [ "$(cat "$prefix/.pytest-axp-installed" 2>/dev/null)" = "$stamp" ] \
  && "$target" -I -c 'import importlib.util as u, sys
sys.exit(not all(u.find_spec(m) for m in ("pytest_axp", "axp_cli", "hypothesis")))' 2>/dev/null; then
  echo "pytest-axp already installed in $prefix"
else
  echo "installing pytest-axp and its dependencies into $prefix"
  "$target" -m pip install -q --disable-pip-version-check -e ".[$extras]"
  printf '%s\n' "$stamp" > "$prefix/.pytest-axp-installed"
  echo "pytest-axp installed in $prefix"
fi

if (( engine )); then
  # Images get node and the agents from npm packages fetched on the host (builds have no
  # registry access of their own).
  if ! command -v npm >/dev/null 2>&1; then
    if [ -f /etc/debian_version ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      echo "installing npm (the sandbox images are made from npm packages)"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq npm >/dev/null
    else
      die "the sandbox images need npm on this machine: install it (Debian/Ubuntu: sudo apt-get install npm) and rerun"
    fi
  fi
  bash scripts/ensure-docker.sh
  bash scripts/seed-base-image.sh
  "$target" -m axp_cli image build
fi

if (( tests )); then
  bash scripts/test-services.sh
fi
