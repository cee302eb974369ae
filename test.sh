#!/usr/bin/env bash
# The whole test suite: unit, integration, conformance (in-memory and Redis), fault, UI and
# doc tests. Tests that need Redis start their own private redis-server on a free loopback port,
# so redis-server must be installed; this script installs Debian's package when it is missing.
set -euo pipefail
cd "$(dirname "$0")"

# Debian/Ubuntu packages for the commands the tests run: redis-server (the private servers),
# openssl (the TLS test's throw-away certificates).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ "${#missing[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    echo "installing Debian packages: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "missing: ${missing[*]}. Install Redis >= 6.2 and openssl (e.g. 'brew install redis openssl') and re-run." >&2
    exit 1
  fi
fi
redis-server --version

cargo test --workspace "$@"
# Feature-gated parts run as feature-enabled builds of their own:
# rediss:// (`tls` feature of event-redis) and trace propagation (`opentelemetry` of event-core).
cargo test -p tests --features tls --test redis_tls "$@"
cargo test -p event-core --features opentelemetry --lib --test trace_propagation "$@"
