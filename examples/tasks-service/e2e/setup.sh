#!/usr/bin/env bash
# Installs playwright-core (pinned by package-lock.json) for the browser test. It drives
# Debian's Chromium (scripts/install-chromium.sh); it downloads no browser of its own.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v npm >/dev/null 2>&1; then
    echo "npm is not installed: install Node.js 20 or later (e.g. apt-get install nodejs npm)" >&2
    exit 1
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
