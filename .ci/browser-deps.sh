#!/usr/bin/env bash
# System packages for the web demo's browser test (tests/test_demo.py): Debian's Chromium, driven headless by
# Playwright's Python API through executable_path=/usr/bin/chromium (no browser download; `playwright install`
# is never needed). fonts-dejavu-core gives the page's text a font on minimal images.
#   sh .ci/browser-deps.sh        # as root, or with sudo available
set -eu
if command -v chromium >/dev/null 2>&1; then
  echo "browser-deps: $(chromium --version) already installed"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium fonts-dejavu-core
chromium --version
