#!/usr/bin/env bash
# Builds the HTML API reference of bridge_jax from its docstrings with pdoc:
#   bash launch/docs.sh [OUTDIR]        (default: docs/api/, not tracked by git)
# Open OUTDIR/index.html. The mathematics behind the API is docs/method.md.
#
# The build fails (exit 1, OUTDIR left as it was) when
#   * any module of the package does not import (pdoc imports every one and stops), or
#   * any Python warning is printed: by pdoc (an unresolvable type annotation, a name in
#     __all__ that does not exist, a submodule it cannot list, ...) or while a module is
#     imported (a FutureWarning, a UserWarning, ...; Python's default filters apply, so
#     DeprecationWarnings inside third-party libraries are not shown),
# except these two known, harmless ones:
#   * bridge_jax.benchmarks.torch_reference and .torch_members need PyTorch, which is
#     optional: when torch is not installed they are left out, and the parent package's
#     "Couldn't import ...<module> ... No module named 'torch'" is accepted. With torch
#     installed they are documented and checked like every other module.
#   * pdoc cannot resolve postponed annotations of typing.NamedTuple fields (open pdoc
#     bug mitmproxy/pdoc#765): "Error parsing type annotation ForwardRef(...) for
#     X.__init__/__new__" is accepted only when X is a NamedTuple of bridge_jax.
# OUTDIR is replaced only on success, and only if it is new, empty or an earlier
# output of this script (it holds the marker file .launch-docs), so a mistyped
# OUTDIR never deletes anything else.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/docs/api}"
[[ "$OUT" == /* ]] || OUT="$PWD/$OUT"  # relative to the caller's directory
source "$ROOT/launch/setup_env.sh"
cd "$ROOT"

MARKER=".launch-docs"
if [[ -e "$OUT" && ! -d "$OUT" ]]; then
  echo "docs.sh: $OUT exists and is not a directory" >&2
  exit 1
fi
if [[ -d "$OUT" && ! -f "$OUT/$MARKER" && -n "$(ls -A "$OUT")" ]]; then
  echo "docs.sh: $OUT is not empty and was not written by launch/docs.sh; refusing to replace it" >&2
  exit 1
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bridge_jax_docs.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

SPECS=(bridge_jax)
if ! python -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is None)"; then
  SPECS+=('!bridge_jax\.benchmarks\.torch_(reference|members)$')
fi

# pdoc silences stdout/stderr while it imports a module, so a warning raised during an
# import would go unseen. The driver therefore imports every module first, recording
# such warnings (printed below in pdoc's own format), then runs pdoc in the same process
# exactly as `python -m pdoc ARGS` would. A module that fails to import is left to pdoc,
# which stops with its traceback. Importing for docstrings needs no accelerator.
cat >"$WORK/driver.py" <<'PY'
import importlib
import pkgutil
import re
import runpy
import sys
import warnings

skip = [re.compile(s[1:]) for s in sys.argv[1:] if s.startswith("!")]
with warnings.catch_warnings(record=True) as seen:
    import bridge_jax

    for info in pkgutil.walk_packages(bridge_jax.__path__, "bridge_jax."):
        if any(p.match(info.name) for p in skip):
            continue
        try:
            importlib.import_module(info.name)
        except Exception:
            pass  # pdoc imports it again and reports the error
for w in seen:
    print(f"{w.category.__name__}: raised while importing: {w.message} "
          f"({w.filename}:{w.lineno})", file=sys.stderr)
sys.argv = ["pdoc", *sys.argv[1:]]
runpy.run_module("pdoc", run_name="__main__", alter_sys=True)
PY

set +e
JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}" PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
  python "$WORK/driver.py" --docformat google --math \
  --footer-text "bridge_jax API reference" -o "$WORK/html" "${SPECS[@]}" \
  >"$WORK/stdout" 2>"$WORK/stderr"
status=$?
set -e
cat "$WORK/stdout"
if [[ $status -ne 0 ]]; then
  cat "$WORK/stderr" >&2
  echo "docs.sh: pdoc failed (exit $status): a module does not import, see above" >&2
  exit 1
fi

# Split stderr into warnings ("Warn: ..." or "<Category>: ...", each up to the next
# one) and fail on any that is not one of the two accepted above.
python - "$WORK/stderr" <<'PY'
import importlib
import re
import sys

text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # pdoc colours its output on a terminal
start = re.compile(r"^(Warn|[A-Za-z_]\w*Warning): ", re.M)
heads = [m.start() for m in start.finditer(text)]
other = text[: heads[0]] if heads else text
blocks = [text[a:b] for a, b in zip(heads, heads[1:] + [len(text)])]

TORCH = re.compile(
    r"^Warn: Couldn't import bridge_jax\.benchmarks\.torch_(reference|members):\n")
FORWARD_REF = re.compile(
    r"^Warn: Error parsing type annotation ForwardRef\('[^']*'\) for "
    r"(bridge_jax(?:\.\w+)+)\.__(?:init|new)__\. Import of [\w.]+ failed")


def is_namedtuple(path):
    module, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except Exception:
        return False
    return isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")


def accepted(block):
    if TORCH.match(block):
        return "No module named 'torch'" in block
    m = FORWARD_REF.match(block)
    return bool(m) and is_namedtuple(m.group(1))


bad = [b for b in blocks if not accepted(b)]
if other.strip():
    sys.stderr.write(other)
for b in bad:
    sys.stderr.write(b)
if bad:
    sys.stderr.write(f"docs.sh: {len(bad)} warning(s) above; the reference is not written\n")
    sys.exit(1)
if blocks:
    print(f"docs.sh: {len(blocks)} known pdoc warning(s) accepted (see launch/docs.sh)")
PY

touch "$WORK/html/$MARKER"
rm -rf "$OUT"
mkdir -p "$(dirname "$OUT")"
mv "$WORK/html" "$OUT"
pages=$(find "$OUT" -name '*.html' -path '*/bridge_jax*' | wc -l)
echo "docs.sh: API reference of $pages modules in $OUT (open $OUT/index.html)"
