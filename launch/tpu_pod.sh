#!/usr/bin/env bash
# Creates (or reuses) a Cloud TPU VM pod slice and trains bridge_jax on every worker.
#
#   bash launch/tpu_pod.sh --name=bridge-v4-32 --zone=us-central2-b --accelerator=v4-32 \
#       --config=cifar10 --workdir=gs://BUCKET/runs/cifar [--project=P] [--spot] \
#       [--service-account=SA] [--detach] [--dry-run] [-- --config.batch_size=1024 ...]
#
# Steps (each a command; --dry-run prints them all and runs none, not even the local tar):
#  1. the slice: `describe`; `create` if it does not exist (--accelerator, --version,
#     --spot, --service-account), after a `delete` if it was preempted or terminated (so
#     rerunning the same command after a preemption resumes from the workdir's checkpoint);
#  2. the code: a versioned tarball of this checkout (bridge_jax/, configs/, pyproject.toml,
#     requirements.txt, README.md, LICENSE) copied to every worker and unpacked into a fresh
#     ~/bridge_jax that replaces the old one whole (never copied into it), or with
#     --repo=URL a fresh `git clone` there; ~/bridge_jax/VERSION names what was shipped;
#  3. Python: the TPU image's Python (3.10 on tpu-ubuntu2204-base) is too old for the pins
#     (requirements.txt needs >= 3.11), so uv (pinned, from PyPI) installs a managed
#     Python --python (default 3.11) and a venv ~/bridge_jax_venv-pyX.Y (kept between
#     runs), into which it installs requirements.txt and jax[tpu] at the pinned version;
#  4. training: one process per worker (`ssh --worker=all`), `--distributed` so that
#     jax.distributed.initialize() finds the coordinator and its peers from the TPU
#     metadata; the progress bar off (`--config.progress_bar=False`: a pod logs lines,
#     see docs/tpu.md), the output also in ~/bridge_jax_train.log on every worker.
#     --detach starts it in the background (it survives the ssh session) and returns.
# The workdir must be one place every worker sees: a gs:// URI, which the trainer writes
# directly (the usual choice), or an absolute path on a shared mount (a bucket mounted
# with gcsfuse, NFS; each worker refuses a path on its own disk). docs/tpu.md:
# permissions, watching progress, preemption.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME="" ZONE="" PROJECT="" SPOT=0 SERVICE_ACCOUNT="" ACCEL="v4-8" VERSION="tpu-ubuntu2204-base" CONFIG="cifar10"
WORKDIR="" PYTHON="3.11" UV_VERSION="0.13.8" REPO_URL="${REPO_URL:-}" DETACH=0 DRY_RUN=0
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name=*) NAME="${1#*=}" ;;
    --zone=*) ZONE="${1#*=}" ;;
    --project=*) PROJECT="${1#*=}" ;;
    --accelerator=*) ACCEL="${1#*=}" ;;
    --version=*) VERSION="${1#*=}" ;;
    --config=*) CONFIG="${1#*=}" ;;
    --workdir=*) WORKDIR="${1#*=}" ;;
    --python=*) PYTHON="${1#*=}" ;;
    --service-account=*) SERVICE_ACCOUNT="${1#*=}" ;;
    --spot) SPOT=1 ;;
    --repo=*) REPO_URL="${1#*=}" ;;
    --detach) DETACH=1 ;;
    --dry-run) DRY_RUN=1 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "tpu_pod.sh: error: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
fail() { echo "tpu_pod.sh: error: $*" >&2; exit 2; }
for var in NAME ZONE WORKDIR; do
  [[ -n "${!var}" ]] || fail "--$(tr 'A-Z' 'a-z' <<< "$var")=... is required"
done
[[ "$PYTHON" =~ ^3\.(1[1-9]|[2-9][0-9])$ ]] \
  || fail "--python=$PYTHON: the pinned requirements need Python 3.11 or newer (e.g. 3.11)"
[[ "$WORKDIR" == /* || "$WORKDIR" == *://* ]] || fail "--workdir=$WORKDIR must be an \
absolute path or a URI: a relative one would be inside ~/bridge_jax, which the next launch replaces"
JAX_VERSION="$(sed -n 's/^jax==//p' "$ROOT/requirements.txt")"
[[ -n "$JAX_VERSION" ]] || fail "requirements.txt pins no jax version (jax==...)"

show() {  # one command as a shell line: plain words bare, the others single-quoted
  local words=() word sq="'"
  for word in "$@"; do
    if [[ $word =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then words+=("$word")
    else words+=("'${word//$sq/$sq\\$sq$sq}'"); fi
  done
  echo "${words[*]}"
}
run() {  # prints (--dry-run) or runs one command
  if [[ $DRY_RUN == 1 ]]; then show "$@"; else "$@"; fi
}
q() { printf '%q' "$1"; }  # quotes a value for the workers' shell
GCLOUD=(gcloud compute tpus tpu-vm)
WHERE=(--zone="$ZONE")
[[ -z "$PROJECT" ]] || WHERE+=(--project="$PROJECT")
on_all_workers() { run "${GCLOUD[@]}" ssh "$NAME" "${WHERE[@]}" --worker=all --command="$1"; }

# 1. The slice.
CREATE=("${GCLOUD[@]}" create "$NAME" "${WHERE[@]}" --accelerator-type="$ACCEL"
        --version="$VERSION" --scopes=https://www.googleapis.com/auth/cloud-platform)
[[ $SPOT == 0 ]] || CREATE+=(--spot)
[[ -z "$SERVICE_ACCOUNT" ]] || CREATE+=(--service-account="$SERVICE_ACCOUNT")
DESCRIBE=("${GCLOUD[@]}" describe "$NAME" "${WHERE[@]}" --format=value\(state\))
DELETE=("${GCLOUD[@]}" delete "$NAME" "${WHERE[@]}" --quiet)
echo "# 1. the slice: created if describe fails; deleted first if PREEMPTED or TERMINATED"
if [[ $DRY_RUN == 1 ]]; then
  run "${DESCRIBE[@]}"; run "${DELETE[@]}"; run "${CREATE[@]}"
else
  STATE="$("${DESCRIBE[@]}" 2>/dev/null || echo MISSING)"
  case "$STATE" in
    MISSING) run "${CREATE[@]}" ;;
    PREEMPTED|TERMINATED) run "${DELETE[@]}"; run "${CREATE[@]}" ;;
    *) echo "# reusing $NAME (state $STATE)" ;;
  esac
fi

# 2. The code, replacing ~/bridge_jax whole.
CODE_VERSION="$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unversioned)"
CODE_VERSION+="-$(date -u +%Y%m%dT%H%M%SZ)"
REPLACE="rm -rf ~/bridge_jax && mv ~/bridge_jax.next ~/bridge_jax"
REPLACE+=" && echo $(q "$CODE_VERSION") > ~/bridge_jax/VERSION"
echo "# 2. the code: ~/bridge_jax replaced whole, version $CODE_VERSION"
if [[ -n "$REPO_URL" ]]; then
  on_all_workers "rm -rf ~/bridge_jax.next && git clone --depth=1 $(q "$REPO_URL") \
~/bridge_jax.next && $REPLACE"
else
  TARBALL_NAME="bridge_jax-$CODE_VERSION.tar.gz"
  TARBALL="${TMPDIR:-/tmp}/$TARBALL_NAME"
  run tar -czf "$TARBALL" -C "$ROOT" --exclude=__pycache__ --exclude='*.pyc' \
    bridge_jax configs pyproject.toml requirements.txt README.md LICENSE
  run "${GCLOUD[@]}" scp "$TARBALL" "$NAME:$TARBALL_NAME" "${WHERE[@]}" --worker=all
  run rm -f "$TARBALL"
  on_all_workers "rm -rf ~/bridge_jax.next && mkdir ~/bridge_jax.next \
&& tar -xzf ~/$TARBALL_NAME -C ~/bridge_jax.next && rm ~/$TARBALL_NAME && $REPLACE"
fi

# 3. Python >= 3.11 and the pinned environment, with uv.
VENV="~/bridge_jax_venv-py$PYTHON"
UV="~/.local/bin/uv"
echo "# 3. Python $PYTHON (uv $UV_VERSION) and the pinned requirements + jax[tpu]==$JAX_VERSION"
on_all_workers "python3 -m pip install --user --quiet uv==$UV_VERSION \
&& $UV python install $PYTHON && { [ -x $VENV/bin/python ] || $UV venv --python $PYTHON $VENV; } \
&& $UV pip install --quiet --python $VENV/bin/python -r ~/bridge_jax/requirements.txt \
\"jax[tpu]==$JAX_VERSION\""

# 4. Train: one process per worker, the coordinator found from the TPU metadata.
# A path workdir must be shared (a gcsfuse bucket, NFS): each worker refuses one that is on
# its own disk (the filesystem of the path's nearest existing folder), as after a slice was
# recreated without mounting the bucket again.
LOCAL_DISK="ext2|ext3|ext4|xfs|btrfs|tmpfs|overlay"
NOT_SHARED="tpu_pod.sh: error: --workdir=$WORKDIR is on this worker's own disk, not shared: \
use a gs:// workdir, or mount the bucket (gcsfuse) or NFS there on every worker first \
(docs/tpu.md)"
CHECK=""
if [[ "$WORKDIR" != *://* ]]; then
  CHECK="d=$(q "$WORKDIR"); while [ ! -e \"\$d\" ]; do d=\$(dirname \"\$d\"); done; "
  CHECK+="case \$(findmnt -n -o FSTYPE -T \"\$d\") in $LOCAL_DISK) "
  CHECK+="echo $(q "$NOT_SHARED") >&2; exit 2;; esac; "
fi
TRAIN="PYTHONUNBUFFERED=1 $VENV/bin/python -m bridge_jax.main --distributed"
TRAIN+=" --config=$(q "$CONFIG") --workdir=$(q "$WORKDIR") --config.progress_bar=False"
for arg in "${EXTRA[@]+"${EXTRA[@]}"}"; do TRAIN+=" $(q "$arg")"; done
LOG="~/bridge_jax_train.log"
echo "# 4. training on every worker (log: $LOG on each)"
if [[ $DETACH == 1 ]]; then
  on_all_workers "${CHECK}cd ~/bridge_jax && { setsid nohup env $TRAIN > $LOG 2>&1 < /dev/null & }"
  echo "# started in the background; follow worker 0 with:"
  echo "#   ${GCLOUD[*]} ssh $NAME ${WHERE[*]} --worker=0 --command='tail -f $LOG'"
else
  on_all_workers "${CHECK}cd ~/bridge_jax && set -o pipefail && $TRAIN 2>&1 | tee $LOG"
fi
