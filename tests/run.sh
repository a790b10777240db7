#!/usr/bin/env bash
# Runs every test of kald. Installs what the tests need when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets
