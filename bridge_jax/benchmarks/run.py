r"""Benchmark of the α-Bridge train step (JAX) against a PyTorch eager reference.

    python -m bridge_jax.benchmarks.run [--quick] [--out results.json]
    python -m bridge_jax.benchmarks.run --no-step --sweep --overhead  # the two below only

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
  speed-up;
* ``--sweep``: N runs (``--members``, default 1,4,10,32) of the 2-D MLP and the 28×28
  DCGAN trained at once by the trainer's member program (``jax.vmap``) and one program
  per run, against PyTorch running them one after another and with ``torch.func.vmap``,
  in runs·steps/s (:mod:`~bridge_jax.benchmarks.sweep_throughput`);
* ``--overhead``: steps/s of ``train_and_evaluate`` (logs, samples, checkpoints at the
  config's cadence; evaluators off) against its bare compiled step on the same batches
  (:mod:`~bridge_jax.benchmarks.trainer_overhead`).

With ``--no-step`` only the ``--sweep``/``--overhead`` parts run. When JAX runs on an
accelerator, the JAX/PyTorch ratios are recorded as ``gpu_vs_host_cpu_ratio`` (etc.),
since the PyTorch reference always runs on the host CPU.

PyTorch is optional: ``pip install torch`` (CPU build) to get the comparison; without it
the JAX-only parts run.

Modules: ``cases`` (model sizes, configs, compiled JAX steps), ``measurement`` (timing, FLOPs,
peaks, input pipeline), ``torch_comparison`` (the PyTorch reference side), ``subprocess_workers``
(XLA-flag and multi-device runs), ``sweep_throughput`` and ``torch_members`` (N runs at once),
``trainer_overhead``, ``suite`` (:func:`run_benchmark`), ``rendering`` (the text report,
from the same record as the JSON) and this entry point, which re-exports their public
names. ``input_pipeline`` is a command of its own: a TFDS JPEG reader, in-process and with
worker processes, against an accelerator step's consumption.
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
    find_ratio,
    matmul_peak,
    measure_interleaved,
    pipeline_throughput,
    ratio_key,
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
from bridge_jax.benchmarks.sweep_throughput import (
    MEMBER_COUNTS,
    SWEEP_SIZES,
    measure_sweep,
    measure_sweep_case,
    sweep_row,
)
from bridge_jax.benchmarks.torch_comparison import (
    LOSS_RTOL,
    build_torch,
    check_losses,
    time_jax_and_torch,
    torch_available,
    torch_compile_runner,
    torch_runner,
)
from bridge_jax.benchmarks.trainer_overhead import (
    OVERHEAD_CONFIGS,
    measure_overhead,
    measure_overhead_case,
    steady_rate,
)

__all__ = [
    "ALPHA", "LOSS_RTOL", "MODEL_SIZES", "build_jax_case", "build_parser", "build_scan_case",
    "build_torch", "calibrate", "check_losses", "cost_flops", "describe_worker_failures",
    "find_ratio", "flags_worker", "format_table", "JaxCase", "main", "make_config",
    "matmul_peak", "measure_interleaved", "measure_overhead", "measure_overhead_case",
    "measure_sweep", "measure_sweep_case", "multidevice_worker", "pipeline_throughput",
    "random_batch", "ratio_key", "render", "repeating_runner", "run_benchmark",
    "run_flag_variants", "run_multidevice", "steady_rate", "sweep_row",
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
    p.add_argument("--no-step", action="store_true",
                   help="skip the single-step measurements (run only --sweep/--overhead)")
    _add_sweep_and_overhead_flags(p)
    p.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_flags-worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_batch", type=int, default=16, help=argparse.SUPPRESS)
    p.add_argument("--_per-device-batch", type=int, default=16, help=argparse.SUPPRESS)
    p.add_argument("--_windows", type=int, default=3, help=argparse.SUPPRESS)
    p.add_argument("--_window-s", type=float, default=0.3, help=argparse.SUPPRESS)
    return p


def _add_sweep_and_overhead_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sweep", action="store_true",
                   help="N runs at once: JAX member program vs PyTorch (runs·steps/s)")
    p.add_argument("--members", default=",".join(map(str, MEMBER_COUNTS)),
                   help="member counts N of --sweep (default %(default)s)")
    p.add_argument("--sweep-sizes", default=",".join(SWEEP_SIZES),
                   help="model sizes of --sweep (default %(default)s)")
    p.add_argument("--sweep-batch", type=int, default=None,
                   help="per-run batch of --sweep (default: 64, as configs/ring.py and "
                   "configs/mnist.py)")
    p.add_argument("--no-torch-vmap", action="store_true",
                   help="--sweep without the torch.func.vmap way")
    p.add_argument("--overhead", action="store_true",
                   help="train_and_evaluate's steps/s vs its bare compiled step")
    p.add_argument("--overhead-configs", default=",".join(OVERHEAD_CONFIGS),
                   help="comma-separated config files (path or path:arg, or 'base') of "
                   "--overhead (default %(default)s; also try configs/mnist.py)")
    p.add_argument("--overhead-members", default="1",
                   help="member counts (sweep.num_seeds) of --overhead (default 1)")
    p.add_argument("--overhead-periods", type=int, default=2,
                   help="timed periods of lcm(log, sample, checkpoint every) steps")
    p.add_argument("--overhead-warm-periods", type=int, default=2,
                   help="untimed periods first (compile, first sample and checkpoint)")
    p.add_argument("--overhead-repeats", type=int, default=2,
                   help="trainer/bare pairs (alternating)")
    p.add_argument("--overhead-profile", action="store_true",
                   help="one more trainer run under cProfile: where its time goes")


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def _sweep_and_overhead(args) -> dict[str, dict | None]:
    """run_benchmark's ``sweep`` and ``overhead`` keyword arguments from the flags."""
    sweep = overhead = None
    if args.sweep:
        sizes = args.sweep_sizes.split(",")
        sweep = {"sizes": sizes, "counts": _ints(args.members),
                 "torch_vmap": not args.no_torch_vmap,
                 "batches": dict.fromkeys(sizes, args.sweep_batch) if args.sweep_batch
                 else None}
    if args.overhead:
        overhead = {"specs": args.overhead_configs.split(","),
                    "members_counts": _ints(args.overhead_members),
                    "periods": args.overhead_periods, "repeats": args.overhead_repeats,
                    "warm_periods": args.overhead_warm_periods,
                    "profile": args.overhead_profile}
    return {"sweep": sweep, "overhead": overhead}


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
                            log=lambda s: print(s, file=sys.stderr, flush=True),
                            step=not args.no_step, **_sweep_and_overhead(args))
    print(render(results))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
