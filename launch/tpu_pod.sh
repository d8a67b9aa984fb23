#!/usr/bin/env bash
# Creates (or reuses) a Cloud TPU VM pod slice and runs bridge_jax on every worker.
#
#   bash launch/tpu_pod.sh --name=bridge-v4-32 --zone=us-central2-b \
#       --accelerator=v4-32 --version=tpu-ubuntu2204-base \
#       --config=configs/cifar10.py --workdir=/mnt/runs/cifar [--dry-run] \
#       [-- --config.batch_size=1024 ...]
#
# Every worker gets the same command (`gcloud ... tpu-vm ssh --worker=all`); each
# runs `python -m bridge_jax.main --distributed`, which calls
# jax.distributed.initialize() so JAX finds its peers from the TPU metadata, and
# each host then reads only its own slice of the global batch. The workdir must be
# a directory every worker sees at the same path (orbax writes each host's shards
# of a checkpoint there; process 0 writes metrics and samples): e.g. a Cloud
# Storage bucket mounted with gcsfuse on every worker, or NFS/Filestore. The
# tfds data_dir (if any) must be readable by every worker too. --dry-run prints
# the gcloud commands instead of running them.
set -euo pipefail
NAME="" ZONE="" ACCEL="v4-8" VERSION="tpu-ubuntu2204-base" CONFIG="configs/cifar10.py"
WORKDIR="" DRY_RUN=0 REPO_URL="${REPO_URL:-}" EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name=*) NAME="${1#*=}" ;;
    --zone=*) ZONE="${1#*=}" ;;
    --accelerator=*) ACCEL="${1#*=}" ;;
    --version=*) VERSION="${1#*=}" ;;
    --config=*) CONFIG="${1#*=}" ;;
    --workdir=*) WORKDIR="${1#*=}" ;;
    --repo=*) REPO_URL="${1#*=}" ;;
    --dry-run) DRY_RUN=1 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "tpu_pod.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
for var in NAME ZONE WORKDIR; do
  if [[ -z "${!var}" ]]; then
    echo "tpu_pod.sh: --$(echo "$var" | tr 'A-Z' 'a-z')=... is required" >&2; exit 2
  fi
done

run() {
  if [[ $DRY_RUN == 1 ]]; then printf '%q ' "$@"; echo; else "$@"; fi
}

# 1. Create the slice if it does not exist yet.
if [[ $DRY_RUN == 1 ]] || ! gcloud compute tpus tpu-vm describe "$NAME" --zone="$ZONE" \
    >/dev/null 2>&1; then
  run gcloud compute tpus tpu-vm create "$NAME" --zone="$ZONE" \
    --accelerator-type="$ACCEL" --version="$VERSION"
fi

# 2. Install on every worker: the code (git clone of REPO_URL, or scp of this checkout)
#    and the pinned environment with JAX's TPU wheels.
SETUP='cd ~/bridge_jax && python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt'
SETUP+=' && .venv/bin/pip install -q "jax[tpu]==$(grep ^jax== requirements.txt | cut -d= -f3)"'
SETUP+=' && .venv/bin/pip install -q --no-deps -e .'
if [[ -n "$REPO_URL" ]]; then
  run gcloud compute tpus tpu-vm ssh "$NAME" --zone="$ZONE" --worker=all \
    --command="rm -rf ~/bridge_jax && git clone $REPO_URL ~/bridge_jax && $SETUP"
else
  ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  run gcloud compute tpus tpu-vm scp --recurse "$ROOT" "$NAME":~/bridge_jax \
    --zone="$ZONE" --worker=all
  run gcloud compute tpus tpu-vm ssh "$NAME" --zone="$ZONE" --worker=all --command="$SETUP"
fi

# 3. Train on all workers at once.
CMD="cd ~/bridge_jax && .venv/bin/python -m bridge_jax.main --distributed"
CMD+=" --config=$CONFIG --workdir=$WORKDIR --config.progress_bar=False"
for arg in "${EXTRA[@]+"${EXTRA[@]}"}"; do CMD+=" $(printf '%q' "$arg")"; done
run gcloud compute tpus tpu-vm ssh "$NAME" --zone="$ZONE" --worker=all --command="$CMD"
