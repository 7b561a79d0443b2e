#!/usr/bin/env bash
# The README's test command. Service-backed tests skip with a printed reason when a service is
# unreachable, unless JARARACA_REQUIRE_SERVICES=1 is set (CI sets it): then they fail.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace
