"""The scripts in examples/ run as a user would run them, and print what they claim.

Each example runs once per module as a subprocess (``python examples/NAME.py`` from the
repository root, on the CPU); the tests parse its printed table and check the numbers
move the way the example's docstring says.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT_S = 120
NUMBER = r"-?(?:\d+\.?\d*(?:e[-+]?\d+)?|inf|nan)"


def run_example(name: str, **extra_env: str) -> str:
    """The stdout of ``python examples/<name>.py``; fails the test on a non-zero exit."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", **extra_env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, str(REPO / "examples" / f"{name}.py")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc.stdout


def table(stdout: str, columns: int) -> list[list[float]]:
    """Rows of ``columns`` whitespace-separated numbers ('-' read as NaN), in order."""
    cell = rf"(?:{NUMBER}|-)"
    pattern = re.compile(rf"^\s*{cell}(?:\s+{cell}){{{columns - 1}}}\s*$")
    return [[float("nan") if v == "-" else float(v) for v in line.split()]
            for line in stdout.splitlines() if pattern.match(line)]


# ---------------------------------------------------------------------------
# examples/losses_plain_jax.py: step, α, B(critic), B(exact d*), D_α, −ELBO


@pytest.fixture(scope="module")
def plain_jax_rows():
    stdout = run_example("losses_plain_jax")
    rows = table(stdout, 6)
    assert [int(r[0]) for r in rows] == list(range(0, 401, 50)), stdout
    return rows


def test_plain_jax_alpha_goes_from_one_to_zero(plain_jax_rows):
    alphas = [r[1] for r in plain_jax_rows]
    assert alphas[0] == 1.0 and alphas[-1] == 0.0
    assert all(a >= b for a, b in zip(alphas, alphas[1:], strict=False))


def test_plain_jax_divergence_falls(plain_jax_rows):
    """D_α drops by over 20× (it ends near 0), and so does the negative ELBO's excess."""
    d = [r[4] for r in plain_jax_rows]
    assert d[0] > 1.0
    assert max(d[1:]) < d[0]
    assert d[-1] < d[0] / 20 and d[-1] < 0.05, d
    assert plain_jax_rows[-1][5] < plain_jax_rows[0][5]  # −ELBO


def test_plain_jax_bound_is_below_the_closed_form(plain_jax_rows):
    """B_α(critic) ≤ D_α (a lower bound), and B_α(d*) ≈ D_α (tight at the exact ratio),
    up to the Monte-Carlo error of 20,000 samples per side."""
    for step, _, bound, exact_ratio_bound, d, _ in plain_jax_rows:
        assert bound <= d + 0.02, (step, bound, d)
        assert abs(exact_ratio_bound - d) <= 0.02 + 0.03 * d, (step, exact_ratio_bound, d)
    # The trained critic is informative: its bound is far above 0 mid-run.
    assert max(r[2] for r in plain_jax_rows) > 0.5


# ---------------------------------------------------------------------------
# examples/losses_flax_nnx.py: step, α, critic loss, bridge loss, B_α, hq, modes


@pytest.fixture(scope="module")
def nnx_rows():
    stdout = run_example("losses_flax_nnx")
    rows = table(stdout, 7)
    assert [int(r[0]) for r in rows] == list(range(0, 301, 50)), stdout
    return rows


def test_nnx_quality_improves(nnx_rows):
    hq = [r[5] for r in nnx_rows]
    modes = [int(r[6]) for r in nnx_rows]
    assert all(0.0 <= h <= 1.0 for h in hq) and all(0 <= m <= 8 for m in modes)
    assert hq[-1] > hq[0] + 0.1, hq
    assert modes[-1] >= 6, modes


def test_nnx_losses_are_finite_and_follow_alpha(nnx_rows):
    """α runs 1 → 0; at α = 0 the bridge loss is exactly the bound B_0."""
    assert nnx_rows[0][1] == 1.0 and nnx_rows[-1][1] == 0.0
    trained = nnx_rows[1:]
    assert all(all(v == v and abs(v) < 1e6 for v in r[2:5]) for r in trained)
    at_zero = [r for r in trained if r[1] == 0.0]
    assert at_zero
    for r in at_zero:
        assert r[3] == pytest.approx(r[4], abs=1e-3)


# ---------------------------------------------------------------------------
# examples/trainer_from_python.py: member, seed, modes, strict, hq, reverse KL


@pytest.fixture(scope="module")
def trainer_output():
    # 20 steps: the run is mostly compiling, which takes about half as long without most
    # XLA optimizations; nothing below depends on them (plumbing, ranges, real data).
    return run_example("trainer_from_python", JAX_DISABLE_MOST_OPTIMIZATIONS="1")


def test_trainer_prints_one_row_per_seed(trainer_output):
    rows = table(trainer_output, 6)
    assert len(rows) == 3, trainer_output
    assert [int(r[0]) for r in rows] == [0, 1, 2]
    assert sorted(int(r[1]) for r in rows) == [0, 1, 2]  # three distinct seeds
    for _, _, modes, strict, hq, reverse_kl in rows:
        assert 0 <= strict <= modes <= 8
        assert 0.0 <= hq <= 1.0
        assert reverse_kl >= 0.0  # inf when no sample is near a mode


def test_trainer_reference_and_history(trainer_output):
    """Real data cover every mode; metrics.jsonl holds the evaluations at steps 10 and 20,
    and the step-20 ones are the final table."""
    real = re.search(rf"^\s*real\s+-\s+(\d+)\s+(\d+)\s+({NUMBER})", trainer_output, re.M)
    assert real, trainer_output
    assert int(real[1]) == 8 and float(real[3]) > 0.9
    history = re.findall(r"step\s+(\d+) member (\d): modes (\d+), hq ([\d.]+)", trainer_output)
    assert sorted((int(s), int(m)) for s, m, _, _ in history) == [
        (s, m) for s in (10, 20) for m in range(3)]
    final = {int(r[0]): (int(r[2]), r[4]) for r in table(trainer_output, 6)}
    for step, member, modes, hq in history:
        if int(step) == 20:
            assert final[int(member)] == (int(modes), pytest.approx(float(hq), abs=1e-3))
