"""Performance benchmark of the α-Bridge train step: ``python -m bridge_jax.benchmarks.run``.

``run`` measures train-step throughput, compile time, XLA FLOPs against the measured matmul
peak, input-pipeline throughput and multi-device overhead, and (when PyTorch is installed)
compares the step with an equivalent PyTorch implementation in ``torch_reference``; with
``--sweep``, N runs trained at once (``sweep_throughput``) against PyTorch running them,
and with ``--overhead``, the trainer's steps/s against its bare step (``trainer_overhead``).
"""
