#!/usr/bin/env bash
# Runs the whole test suite: every crate's unit, integration and doc tests.
# Service-backed tests skip with a printed reason when a service is unreachable, unless
# JARARACA_REQUIRE_SERVICES=1 is set (CI sets it), in which case they fail.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets
cargo test --workspace --doc
