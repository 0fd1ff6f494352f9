#!/usr/bin/env bash
# On a machine with no image registry, build the sandbox's FROM image (debian:bookworm)
# locally from the machine's own apt sources. Elsewhere `docker build` pulls it as usual.
set -euo pipefail
name="${1:-${AXP_BASE_IMAGE:-debian:bookworm}}"

if docker image inspect "$name" >/dev/null 2>&1; then
  echo "$name already present"; exit 0
fi
if docker pull "$name" >/dev/null 2>&1; then
  echo "$name pulled"; exit 0
fi
if ! command -v mmdebstrap >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq mmdebstrap >/dev/null
fi
mmdebstrap --variant=minbase bookworm - 2>/dev/null | docker import - "$name" >/dev/null
echo "$name seeded with mmdebstrap"
