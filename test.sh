#!/usr/bin/env bash
# The whole test suite: unit, integration, conformance (in-memory and Redis), fault, UI and
# doc tests. Tests that need Redis start their own private redis-server on a free loopback port,
# so redis-server must be installed; this script installs Debian's package when it is missing.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v redis-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    echo "redis-server not found: installing Debian's redis-server package" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
  else
    echo "redis-server not found. Install Redis >= 6.2 (e.g. 'brew install redis' or 'dnf install redis') and re-run." >&2
    exit 1
  fi
fi
redis-server --version

cargo test --workspace "$@"
