#!/usr/bin/env bash
# Installs what Patchward's tests need that Go modules do not bring:
# Debian's Chromium (browser tests), PostgreSQL server binaries (the
# conformance suite's second engine), and dnf, zypper, rpm (rpmbuild) and
# createrepo-c, with which the agent's tests drive the real RPM package
# managers in a throw-away install root. Safe to run repeatedly.
set -euo pipefail

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need_apt+=(postgresql)
fi
command -v dnf >/dev/null 2>&1 || need_apt+=(dnf)
command -v zypper >/dev/null 2>&1 || need_apt+=(zypper)
command -v rpmbuild >/dev/null 2>&1 || need_apt+=(rpm)
command -v createrepo_c >/dev/null 2>&1 || need_apt+=(createrepo-c)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: need ${need_apt[*]}; run this script as root (or: sudo apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
  echo "setup: installing ${need_apt[*]} from Debian" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
command -v go >/dev/null || { echo "setup: Go 1.26 is required (https://go.dev/dl)" >&2; exit 1; }
go mod download
echo "setup: ok" >&2
