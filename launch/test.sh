#!/usr/bin/env bash
# The README's test command: sets up the environment, lints, and runs the whole suite.
#   bash launch/test.sh [extra pytest args]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/launch/setup_env.sh"
cd "$ROOT"
ruff check .
python -m pytest tests "$@"
