r"""Benchmark of the α-Bridge train step (JAX) against a PyTorch eager reference.

    python -m bridge_jax.benchmarks.run [--quick] [--out results.json]

Prints tables and writes them (with machine details) as JSON:

* train-step throughput (examples/s; median over timed windows after warm-up, each window
  ended by ``block_until_ready``) per model size (2-D MLP, 28×28, 32×32, 64×64) at two batch
  sizes, compile time, the step's FLOPs from XLA's cost analysis and achieved FLOP/s as a
  share of the machine's measured peak (the faster of a jitted and a PyTorch float32 2048²
  matmul, in the same run), for JAX and for PyTorch, and the "ratio cap" 1 / (PyTorch's
  share): the JAX/PyTorch ratio a JAX step at 100% of peak would reach;
* when PyTorch is installed, the same networks and α-Bridge step in PyTorch eager, timed in
  windows interleaved with the JAX ones (same process, same threads), so the headline
  ratio JAX/PyTorch is robust to load from other processes; and a check that both compute
  the same losses from the same weights, batch and noise;
* variants: several steps per call (``lax.scan``), bfloat16 compute, transposed-conv
  upsampling;
* input-pipeline throughput of each dataset (``get_batch``) against the step's consumption;
* XLA:CPU flag sets (default ``--xla_cpu_use_onednn=true``) against none, JAX vs PyTorch
  interleaved in one subprocess per set (flags are read when the backend starts);
* multi-device overhead: the step on 1, 2, 4, 8 simulated CPU devices at a fixed per-device
  batch (subprocesses with ``--xla_force_host_platform_device_count``). All simulated
  devices share the same cores, so this measures partitioning/all-reduce overhead, not
  speed-up.

PyTorch is optional: ``pip install torch`` (CPU build) to get the comparison; without it
the JAX-only parts run.

Modules: ``cases`` (model sizes, configs, compiled JAX steps), ``measurement`` (timing, FLOPs,
peaks, input pipeline), ``torch_comparison`` (the PyTorch reference side), ``subprocess_workers``
(XLA-flag and multi-device runs), ``suite`` (:func:`run_benchmark`), ``rendering`` (the text
report) and this entry point, which re-exports their public names.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from bridge_jax.benchmarks.cases import (
    ALPHA,
    MODEL_SIZES,
    JaxCase,
    build_jax_case,
    build_scan_case,
    make_config,
    random_batch,
    repeating_runner,
)
from bridge_jax.benchmarks.measurement import (
    calibrate,
    cost_flops,
    matmul_peak,
    measure_interleaved,
    pipeline_throughput,
    torch_matmul_peak,
)
from bridge_jax.benchmarks.rendering import describe_worker_failures, format_table, render
from bridge_jax.benchmarks.subprocess_workers import (
    flags_worker,
    multidevice_worker,
    run_flag_variants,
    run_multidevice,
)
from bridge_jax.benchmarks.suite import run_benchmark
from bridge_jax.benchmarks.torch_comparison import (
    LOSS_RTOL,
    build_torch,
    check_losses,
    time_jax_and_torch,
    torch_available,
    torch_compile_runner,
    torch_runner,
)

__all__ = [
    "ALPHA", "LOSS_RTOL", "MODEL_SIZES", "build_jax_case", "build_parser", "build_scan_case",
    "build_torch", "calibrate", "check_losses", "cost_flops", "describe_worker_failures",
    "flags_worker", "format_table", "JaxCase", "main", "make_config", "matmul_peak",
    "measure_interleaved", "multidevice_worker", "pipeline_throughput", "random_batch",
    "render", "repeating_runner", "run_benchmark", "run_flag_variants", "run_multidevice",
    "time_jax_and_torch", "torch_available", "torch_compile_runner", "torch_matmul_peak",
    "torch_runner",
]


def build_parser() -> argparse.ArgumentParser:
    """The command line: public flags, and the hidden ones of the subprocess workers."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="one batch size, short windows")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--sizes", default=None, help="comma-separated subset of "
                   + ",".join(MODEL_SIZES))
    p.add_argument("--torch-compile", action="store_true",
                   help="also time torch.compile on 32x32 (slow to compile)")
    p.add_argument("--no-multidevice", action="store_true")
    p.add_argument("--xla-flags", action="append", default=None, metavar="FLAGS",
                   help="an XLA:CPU flag set to compare against no flags on the image "
                   "models (repeatable; default: --xla_cpu_use_onednn=true)")
    p.add_argument("--no-xla-flags", action="store_true")
    p.add_argument("--torch-threads", type=int, default=None,
                   help="PyTorch intra-op threads (default: all cores, as XLA uses). On a "
                   "loaded machine OpenMP barriers make 2+ threads erratic; try 1")
    p.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_flags-worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_batch", type=int, default=16, help=argparse.SUPPRESS)
    p.add_argument("--_per-device-batch", type=int, default=16, help=argparse.SUPPRESS)
    p.add_argument("--_windows", type=int, default=3, help=argparse.SUPPRESS)
    p.add_argument("--_window-s", type=float, default=0.3, help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args._flags_worker:
        print(json.dumps(flags_worker(args._flags_worker, args._batch, args._windows,
                                      args._window_s)))
        return 0
    if args._worker:
        print(json.dumps(multidevice_worker(args._worker, args._per_device_batch,
                                            args._windows, args._window_s)))
        return 0
    sizes = args.sizes.split(",") if args.sizes else None
    results = run_benchmark(quick=args.quick, sizes=sizes, torch_compile=args.torch_compile,
                            multidevice=not args.no_multidevice,
                            torch_threads=args.torch_threads,
                            xla_flags=() if args.no_xla_flags else
                            (args.xla_flags or ["--xla_cpu_use_onednn=true"]),
                            log=lambda s: print(s, file=sys.stderr, flush=True))
    print(render(results))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
