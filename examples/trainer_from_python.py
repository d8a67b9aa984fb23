"""The trainer from Python: build a config, train 3 seeds in one program, read the scores.

Run it from the repository root (about 30 s on a CPU, most of it compiling the step):

    python examples/trainer_from_python.py

What it shows: the pieces behind ``python -m bridge_jax.main`` called from your own code.

1. ``config_from_file("configs/ring.py", "tiny")`` builds the config the CLI would
   (``--config=configs/ring.py:tiny``): the α-Bridge on the ring of 8 Gaussians, shrunk
   to a small model for a quick run. Its fields are then overridden in Python: 20 steps,
   3 seeds (``sweep.num_seeds = 3``: the seeds train as ``jax.vmap``-ed members of one
   compiled program) and an evaluation every 10 steps.
2. ``bridge_jax.train.train_and_evaluate(config, workdir)`` trains them in a temporary
   workdir and returns a ``TrainResult``: ``evals`` (one dict per member, here the
   ``mixture`` evaluator's PacGAN scores) and ``labels`` (one per member).
3. The workdir holds the same scores as files: ``members.json`` (each member's seed and
   config), ``summary.json`` (``"evals"``: one dict per member, or a single dict for a
   single member; ``"evals_reference"``: real data scored the same way), and
   ``metrics.jsonl`` (one ``eval/...`` line per member and evaluation step).

It prints the per-seed table of the final evaluation (modes reached of 8, strict modes,
HQ fraction, reverse KL of the mode histogram to uniform), the real-data row, and the
evaluation history. Twenty steps of a 16-unit model score near zero: the point is the
plumbing; ``configs/ring.py`` without ``tiny`` runs 9,000 steps and covers the ring.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import tempfile

from bridge_jax import train
from bridge_jax.configuration import config_from_file

REPO = pathlib.Path(__file__).resolve().parents[1]
COLUMNS = ("modes_covered", "modes_covered_strict", "hq_fraction", "reverse_kl")


def make_config():
    """configs/ring.py:tiny with 20 steps, 3 seeds and an evaluation every 10 steps."""
    config = config_from_file(REPO / "configs" / "ring.py", "tiny")
    config.num_steps = 20
    config.sweep.num_seeds = 3  # seeds config.seed, +1, +2: members of one program
    config.eval.every = 10
    config.checkpoint_every = 20  # fewer checkpoints and sample plots: a faster run
    config.sample_every = 20
    return config


def read_json(workdir: str, name: str):
    with open(os.path.join(workdir, name)) as f:
        return json.load(f)


def eval_history(workdir: str) -> list[dict]:
    """The per-member evaluation lines of metrics.jsonl (they carry a "member" key)."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [r for r in records if "member" in r]


def row(name: str, seed: str, scores: dict) -> str:
    # float(): summary.json writes non-finite scores as the strings 'inf' and 'nan'.
    modes, strict, hq, rkl = (float(scores[k]) for k in COLUMNS)
    return f"{name:>6} {seed:>5} {modes:6.0f} {strict:7.0f} {hq:6.3f} {rkl:11.4g}"


def print_scores(result, workdir: str) -> None:
    members = read_json(workdir, "members.json")
    summary = read_json(workdir, "summary.json")
    evals = summary["evals"] if isinstance(summary["evals"], list) else [summary["evals"]]
    assert len(evals) == len(result.evals) == len(members)
    print(f"trained {summary['num_members']} members x {summary['steps_run']} steps "
          f"in {summary['wall_time_s']:.1f} s; labels: {sorted(set(result.labels))}")
    print(f"final evaluation (step {summary['evals_step']}):")
    print(f"{'member':>6} {'seed':>5} {'modes':>6} {'strict':>7} {'hq':>6} {'reverse_kl':>11}")
    for m, scores in enumerate(result.evals):
        print(row(str(m), str(members[m]["seed"]), scores))
    print(row("real", "-", summary["evals_reference"]))
    print("evaluation history (metrics.jsonl):")
    for r in eval_history(workdir):
        print(f"  step {r['step']:3d} member {r['member']}: "
              f"modes {float(r['eval/modes_covered']):.0f}, "
              f"hq {float(r['eval/hq_fraction']):.3f}")


def main():
    # TensorBoard warns about each infinite reverse KL (no HQ sample yet); keep it quiet.
    logging.getLogger("tensorboardX").setLevel(logging.ERROR)
    config = make_config()
    with tempfile.TemporaryDirectory() as workdir:
        result = train.train_and_evaluate(config, workdir)
        print_scores(result, workdir)


if __name__ == "__main__":
    main()
