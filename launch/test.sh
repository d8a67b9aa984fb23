#!/usr/bin/env bash
# The README's test command: sets up the environment, lints, builds the API reference
# (launch/docs.sh) and runs the whole suite.
#   bash launch/test.sh [extra pytest args]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/launch/setup_env.sh"
cd "$ROOT"
ruff check .
bash launch/docs.sh   # API reference into docs/api/; fails if a module does not import or pdoc warns
python -m pytest tests "$@"
