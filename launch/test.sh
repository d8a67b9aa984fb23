#!/usr/bin/env bash
# The README's test command: sets up the environment, lints, builds the API reference
# (launch/docs.sh) and runs the whole suite in two processes.
#   bash launch/test.sh [extra pytest args]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/launch/setup_env.sh"
cd "$ROOT"
ruff check .
bash launch/docs.sh   # API reference into docs/api/; fails if a module does not import or pdoc warns
# Two worker processes, one test file each at a time (module fixtures are built once):
# most tests are tiny configs whose time is single-threaded XLA compilation, so two
# files run side by side on two cores. PYTEST_WORKERS=0 runs in one process.
python -m pytest tests -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
