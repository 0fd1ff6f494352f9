#!/usr/bin/env bash
# Make sure a Docker engine answers: use a running one, else install Debian's docker.io
# and start dockerd in the background, then wait until it answers.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  echo "docker engine already running"; exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  # Its own session: the engine outlives the shell (and the process group) that started it.
  setsid nohup dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
fi
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then echo "docker engine started"; exit 0; fi
  sleep 1
done
echo "dockerd did not start; see /var/log/dockerd.log" >&2
tail -20 /var/log/dockerd.log >&2 || true
exit 1
