#!/usr/bin/env bash
# Builds the web front end into web/dist (served at / by `tasks-service server`): installs
# the npm packages pinned by web/package-lock.json, type-checks and bundles with Vite. The
# generated client it builds on is client/tasks.ts, kept up to date by `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/../web"
if ! command -v npm >/dev/null 2>&1; then
    echo "npm is not installed: install Node.js 20 or later (e.g. apt-get install nodejs npm)" >&2
    exit 1
fi
# A fresh install when the lock file changed since the last one (npm keeps its own copy).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
npm run build --silent
