#!/usr/bin/env bash
# What the test suite drives besides Python packages and the Docker engine (install.sh
# --tests runs this): Chromium (the viewer and the report, through Playwright), `ip` and an
# sshd binary (the engine-pool tests start extra dockerds on bridges of their own and an
# sshd of their own on 127.0.0.1; the system's ssh service is not left running), and a
# running PostgreSQL with the role the server's database tests use.
set -euo pipefail

die() { echo "test-services.sh: $*" >&2; exit 1; }

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql)
if (( ${#missing[@]} )); then
  if [ -f /etc/debian_version ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing ${missing[*]} (the tests drive them)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
    if [[ " ${missing[*]} " == *" openssh-server "* ]]; then
      systemctl disable --now ssh >/dev/null 2>&1 || service ssh stop >/dev/null 2>&1 || true
    fi
  else
    die "the tests need ${missing[*]}: install them (Debian/Ubuntu: sudo apt-get install ${missing[*]}) and rerun"
  fi
fi

# PostgreSQL: the first cluster, started; the role the tests connect as
# (postgresql://axp:axp@127.0.0.1:5432/postgres, or AXP_TEST_POSTGRES_URL).
read -r pg_version pg_cluster _ < <(pg_lsclusters -h | head -1) \
  || die "no PostgreSQL cluster (pg_lsclusters lists none)"
pg_ctlcluster "$pg_version" "$pg_cluster" start >/dev/null 2>&1 || true  # already up is fine
su postgres -c "psql -tAc \"select 1 from pg_roles where rolname = 'axp'\"" | grep -q 1 \
  || su postgres -c "psql -qc \"create user axp with password 'axp' createdb\""
