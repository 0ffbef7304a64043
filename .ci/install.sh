#!/usr/bin/env bash
# Installs, from the distribution's package manager, whatever a fresh machine
# lacks to build pg-cdc and run its services. Idempotent; prints what it does.
set -euo pipefail

missing=()
need() { # need <command> <debian package>
  command -v "$1" >/dev/null 2>&1 || missing+=("$2")
}
need cc build-essential
need make build-essential
need pkg-config pkg-config
need java openjdk-17-jre-headless
need mvn maven
# Test CAs and certificates for the services' TLS endpoints (xtask).
need openssl openssl
need python3 python3
need runuser util-linux
# PostgreSQL server binaries (initdb, pg_ctl) unless PG_BIN points at some.
if [ -z "${PG_BIN:-}" ]; then
  if ! command -v pg_config >/dev/null 2>&1 || [ ! -x "$(pg_config --bindir)/initdb" ]; then
    missing+=(postgresql postgresql-client)
  fi
fi
# Headers rdkafka builds librdkafka against (TLS, zlib).
dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
dpkg -s zlib1g-dev >/dev/null 2>&1 || missing+=(zlib1g-dev)

if [ ${#missing[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  echo "installing: $pkgs"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $pkgs
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found. Install Rust with rustup (https://rustup.rs); the toolchain is pinned in rust-toolchain.toml." >&2
  exit 1
fi

# Python packages used by cross-implementation tests.
if [ -f "$(dirname "$0")/install-python-deps.sh" ]; then
  bash "$(dirname "$0")/install-python-deps.sh"
fi
echo "toolchain: $(cargo --version), $(java -version 2>&1 | head -1), $(mvn -v 2>/dev/null | head -1 | sed 's/\x1b\[[0-9;]*m//g')"
