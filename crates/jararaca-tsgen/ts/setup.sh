#!/usr/bin/env bash
# Installs the npm packages the generated TypeScript clients are compiled and run against
# (typescript, @jararaca/core and its peers, axios), at the versions pinned by
# package-lock.json, into ./node_modules.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v npm >/dev/null 2>&1; then
    echo "npm is not installed: install Node.js 18 or later (e.g. apt-get install nodejs npm)" >&2
    exit 1
fi
npm ci --no-audit --no-fund --loglevel=error
