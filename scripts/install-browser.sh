#!/usr/bin/env bash
# Install Debian's Chromium (/usr/bin/chromium) for the browser test, when it is missing.
# Never a browser download: the distribution's package only (Playwright drives it through
# executable_path). Runs apt-get update only if the first install attempt fails (stale lists).
set -euo pipefail

BROWSER=/usr/bin/chromium
if [ -x "$BROWSER" ]; then
  echo "install-browser: $BROWSER is already installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-browser: no apt-get here; install Chromium so that $BROWSER exists" >&2
  exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
  else
    echo "install-browser: not root and no sudo; run as root: apt-get install -y chromium" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
install() { ${SUDO[@]+"${SUDO[@]}"} apt-get install -y --no-install-recommends chromium; }
if ! install; then
  echo "install-browser: install failed; refreshing the package lists and trying again" >&2
  ${SUDO[@]+"${SUDO[@]}"} apt-get update
  install
fi
if [ ! -x "$BROWSER" ]; then
  echo "install-browser: chromium installed but $BROWSER is missing" >&2
  exit 1
fi
echo "install-browser: $("$BROWSER" --version 2>/dev/null || echo "$BROWSER installed")"
