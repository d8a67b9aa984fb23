"""The member axis and sweeps: members vs separate runs, non-finite isolation, sweep
validation, kill/resume of a multi-member sweep (bitwise), and the report of a sweep."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from bridge_jax import configuration, members, resume, sweeps, train
from bridge_jax.configuration import ConfigError
from tests import train_helpers as helpers

ROOT = Path(__file__).resolve().parents[1]
BRIDGE_AND_VAE = (
    {"name": "bridge_cosine", "set": {"method": "bridge", "alpha.schedule": "cosine"}},
    {"name": "vae", "label": "VAE (α≡1)", "set": {"method": "vae"}},
)


@pytest.fixture(scope="module", autouse=True)
def _fast(tmp_path_factory):
    with helpers.fast_compiles(helpers.cache_dir(tmp_path_factory)):
        yield


def _ring(num_steps=4, **fields):
    c = helpers.load_config("ring", "tiny")
    c.num_steps = num_steps
    c.num_final_samples = 0
    c.sample_every = 10**6
    c.eval.evaluators = ""
    c.alpha.transition_steps = 4  # α(step) and the lr schedules independent of num_steps
    c.generator.lr_decay_steps = c.critic.lr_decay_steps = 4
    for name, value in fields.items():
        configuration.set_field(c, name, value)
    return c


def test_members_are_grouped_by_their_compiled_step():
    c = _ring()
    c.sweep.runs = (*BRIDGE_AND_VAE, {"name": "nsgan", "set": {"method": "nsgan"}},
                    {"name": "penalty", "set": {"critic.gradient_penalty": 0.5}})
    c.sweep.num_seeds = 3
    all_members = sweeps.expand(c)
    assert [(m.run, m.seed) for m in all_members[:4]] == [
        ("bridge_cosine", 0), ("bridge_cosine", 1), ("bridge_cosine", 2), ("vae", 0)]
    groups = sweeps.group_members(all_members)
    # bridge and vae share a step (α from a table); nsgan and another penalty do not.
    assert [[m.run for m in g][::3] for g in groups] == [
        ["bridge_cosine", "vae"], ["nsgan"], ["penalty"]]
    assert [m.index for m in groups[0]] == list(range(6))
    assert all_members[3].config.method == "vae" and all_members[3].label == "VAE (α≡1)"
    assert all_members[0].label == "α-Bridge 1→0 (cosine)"
    c.sweep.vmap_members = False
    assert len(sweeps.group_members(sweeps.expand(c))) == len(all_members)


@pytest.mark.parametrize("run, phrase", [
    ({"name": "x", "set": {"critic.gradient_penaltty": 1.0}}, "unknown config field"),
    ({"name": "x", "set": {"alpha.end": 2.0}}, "alpha.end must lie in [0, 1]"),
    ({"name": "x", "set": {"seed": 3}}, "seeds and the sweep are set by the sweep"),
    ({"name": "x", "sett": {}}, "unknown key(s) ['sett']"),
    ({"set": {}}, "non-empty 'name'"),
])
def test_a_bad_sweep_run_is_refused_before_anything_trains(tmp_path, run, phrase):
    c = _ring()
    c.sweep.runs = (BRIDGE_AND_VAE[0], run)
    with pytest.raises(ConfigError) as err:
        train.train_and_evaluate(c, str(tmp_path / "w"))
    assert phrase in str(err.value)
    assert not (tmp_path / "w").exists()


def test_members_match_the_same_runs_trained_alone(tmp_path):
    c = _ring()
    c.sweep.runs = BRIDGE_AND_VAE
    c.sweep.num_seeds = 2
    group, = sweeps.group_members(sweeps.expand(c))
    together = train.train_group(group, str(tmp_path / "together")).state
    for m in group:
        alone = train.train_group([m], str(tmp_path / f"alone{m.index}")).state
        stacked = helpers.flat_state(jax.tree.map(lambda a, i=m.index: a[i], together))
        for name, value in helpers.flat_state(alone).items():
            # vmap batches the members' matmuls, which XLA:CPU rounds differently in the
            # last float32 bit: after 4 steps the largest difference seen is 2.4e-7.
            np.testing.assert_allclose(stacked[name], value, rtol=1e-5, atol=1e-6,
                                       err_msg=f"member {m.index} {name}")
    # The members really differ: α paths and seeds.
    kernels = helpers.flat_state(together)["['params']['critic']['Dense_0']['kernel']"]
    assert not np.array_equal(kernels[0], kernels[1])


def test_a_member_stopping_on_a_non_finite_update_leaves_the_others_untouched(
        tmp_path, monkeypatch):
    c = _ring(num_steps=6)
    c.log_every = 1
    c.sweep.num_seeds = 3
    group = sweeps.expand(c)
    clean = helpers.flat_state(train.train_group(group, str(tmp_path / "clean")).state)
    real = members.make_dataset

    def poisoned(config, **kw):  # seed 1's stream turns NaN at step 3
        ds = real(config, **kw)
        return helpers.PoisonedDataset(ds, {3}) if int(config.seed) == 1 else ds

    monkeypatch.setattr(members, "make_dataset", poisoned)
    result = train.train_group(group, str(tmp_path / "poisoned"))
    hit = helpers.flat_state(result.state)
    for name, value in clean.items():
        np.testing.assert_array_equal(hit[name][[0, 2]], value[[0, 2]], err_msg=name)
    assert hit["['step']"].tolist() == [6, 3, 6]
    assert hit["['first_nonfinite_step']"].tolist() == [-1, 3, -1]
    summary = json.loads((tmp_path / "poisoned" / "summary.json").read_text())
    assert summary["complete"] is True
    assert [s["first_step"] for s in summary["nonfinite"]] == [None, 3, None]
    assert "critic_loss" in summary["nonfinite"][1]["what"]


# ---------------------------------------------------------------------------------------
# A sweep through the CLI: killed (SIGKILL) in its multi-member group, preempted (SIGTERM)
# in its second group, each rerun with the same command, against an uninterrupted one.

SWEEP_FILE = '''
import pathlib
from bridge_jax.configuration import config_from_file

def get_config():
    config = config_from_file(pathlib.Path({ring!r}), "tiny")
    config.num_steps = 12
    config.checkpoint_every = 2
    config.log_every = 1
    config.eval.every = 4
    config.sample_every = 10**6
    config.num_final_samples = 50
    config.sweep.name = "ring"
    config.sweep.num_seeds = 2
    config.sweep.runs = (
        {{"name": "bridge_cosine", "set": {{"alpha.schedule": "cosine"}}}},
        {{"name": "vae", "label": "VAE (α≡1)", "set": {{"method": "vae"}}}},
        {{"name": "nsgan", "label": "NS-GAN", "set": {{"method": "nsgan"}}}},
    )
    return config
'''


def _final_digest(group_dir: Path) -> str:
    """The SHA-256 of every array of the newest checkpoint (what restore verifies)."""
    from bridge_jax import checkpointing

    ckpt = checkpointing.Checkpointer(str(group_dir / "checkpoints"))
    try:
        step = ckpt.latest_step()
        return f"{step}:" + ckpt.manager.metadata(step).custom_metadata[
            checkpointing.DIGEST_KEY]
    finally:
        ckpt.close()


def _checkpoint_steps(group_dir: Path) -> list[int]:
    d = group_dir / "checkpoints"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


@pytest.fixture(scope="module")
def sweep_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    config_file = root / "sweep_config.py"
    config_file.write_text(SWEEP_FILE.format(ring=str(ROOT / "configs" / "ring.py")))
    env = helpers.subprocess_env(helpers.cache_dir(tmp_path_factory))

    def cli(workdir):
        return [sys.executable, "-m", "bridge_jax.main", f"--config={config_file}",
                f"--workdir={workdir}"]

    ref = subprocess.run(cli(root / "reference"), cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=400)
    assert ref.returncode == 0, ref.stderr[-3000:]
    # When to stop each: SIGKILL inside the 4-member group, SIGTERM inside the second group.
    targets = {root / "killed": ("g00_bridge_cosine", signal.SIGKILL),
               root / "termed": ("g01_nsgan", signal.SIGTERM)}
    procs = {w: subprocess.Popen(cli(w), cwd=ROOT, env=env, stdout=open(f"{w}.log", "w"),
                                 stderr=subprocess.STDOUT) for w in targets}
    pending, deadline = dict(targets), time.monotonic() + 400
    try:
        while pending:
            for w, (group, sig) in list(pending.items()):
                if any(s >= 4 for s in _checkpoint_steps(w / group)):
                    procs[w].send_signal(sig)
                    del pending[w]
                elif procs[w].poll() is not None:
                    pytest.fail(f"{w.name} ended early:\n{Path(f'{w}.log').read_text()[-3000:]}")
            assert time.monotonic() < deadline, "the sweeps did not reach their stop points"
            time.sleep(0.02)
        first_rc = {w: p.wait(timeout=120) for w, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
    stopped = {w: {g: _checkpoint_steps(w / g) for g in ("g00_bridge_cosine", "g01_nsgan")}
               for w in targets}
    reruns = {w: subprocess.run(cli(w), cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=400) for w in targets}
    return root, first_rc, stopped, reruns


def test_a_killed_or_preempted_sweep_resumes_bitwise(sweep_runs):
    root, first_rc, stopped, reruns = sweep_runs
    assert first_rc[root / "killed"] == -signal.SIGKILL
    assert first_rc[root / "termed"] == 0  # SIGTERM: saved and exited cleanly
    assert stopped[root / "killed"]["g01_nsgan"] == []  # killed before the second group
    assert stopped[root / "termed"]["g00_bridge_cosine"][-1] == 12  # first group finished
    for w in ("killed", "termed"):
        assert reruns[root / w].returncode == 0, reruns[root / w].stderr[-3000:]
        assert "resumed from checkpoint step" in reruns[root / w].stderr
        for group in ("g00_bridge_cosine", "g01_nsgan"):
            ref, got = root / "reference" / group, root / w / group
            assert _final_digest(got) == _final_digest(ref), (w, group)
            a, b = (json.loads((d / "summary.json").read_text()) for d in (ref, got))
            assert b["complete"] and b["evals"] == a["evals"], (w, group)
            assert b["evals_reference"] == a["evals_reference"]
            np.testing.assert_array_equal(np.load(got / "samples.npy"),
                                          np.load(ref / "samples.npy"))


def test_the_report_of_a_resumed_sweep_is_the_uninterrupted_ones(sweep_runs, tmp_path):
    from bridge_jax import report

    root = sweep_runs[0]
    tables = {}
    for w in ("reference", "killed"):
        md = report.write_report([str(root / w)], str(tmp_path / w), plots=False)
        tables[w] = [line for line in md.splitlines() if line.startswith("|")]
    assert tables["killed"] == tables["reference"]
    assert any(line.startswith("| VAE (α≡1) |") for line in tables["reference"])
    assert any(line.startswith("| NS-GAN |") for line in tables["reference"])


def test_the_readme_run_command_trains_seeds_as_members_and_prints_their_scores(
        tmp_path, tmp_path_factory):
    """README: ``bash launch/run.sh --config=configs/ring.py ... --config.sweep.num_seeds=4``
    (here the config's :tiny variant): one line of scores per seed, as in summary.json."""
    env = helpers.subprocess_env(helpers.cache_dir(tmp_path_factory))
    r = subprocess.run(["bash", "launch/run.sh", "--config=configs/ring.py:tiny",
                        f"--workdir={tmp_path}", "--config.alpha.schedule=linear",
                        "--config.sweep.num_seeds=4"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [x for x in r.stdout.splitlines() if x.startswith("bridge_jax: scores: ")]
    assert [x.split(":")[2].strip() for x in lines] == [
        f"α-Bridge 1→0 (linear) seed {s}" for s in range(4)]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["evals"]) == 4 and summary["num_members"] == 4
    for line, evals in zip(lines, summary["evals"], strict=True):
        assert f"modes_covered={evals['modes_covered']}," in line


@pytest.mark.parametrize("name, members, group_sizes", [
    ("ring", 100, [70, 10, 10, 10]), ("grid", 100, [70, 10, 10, 10]),
    ("stacked_mnist", 10, [1] * 10)])
def test_the_shipped_sweeps_expand_into_valid_groups(name, members, group_sizes):
    config = helpers.load_config(f"sweeps/{name}")
    expanded = sweeps.expand(config)  # validates every member
    assert len(expanded) == members
    assert [len(g) for g in sweeps.group_members(expanded)] == group_sizes
    assert len(sweeps.expand(helpers.load_config(f"sweeps/{name}", "tiny"))) in (20, 10)


@pytest.mark.parametrize("sweep, num_members", [("ring", 100), ("grid", 100),
                                                 ("stacked_mnist", 10)])
def test_the_stored_records_are_what_their_sweep_config_trains(sweep, num_members):
    """The README's tables came from these configs: every stored member config equals
    the expansion of configs/sweeps/<sweep>.py (the runs only turned the progress bar
    off)."""
    records = ROOT / "results" / "records" / f"sweep_{sweep}"
    if not records.exists():
        pytest.fail(f"no stored records of the {sweep} sweep in {records}")
    expanded = {(m.run, m.seed): json.loads(m.config.to_json_best_effort())
                for m in sweeps.expand(helpers.load_config(f"sweeps/{sweep}"))}
    stored = [r for g in sorted(records.glob("g*"))
              for r in json.loads((g / "members.json").read_text())]
    assert len(stored) == len(expanded) == num_members
    for record in stored:
        want = expanded[(record["run"], record["seed"])]
        # Exact, except fields added to the config since the sweep ran: the record lacks
        # them, and they must be at their defaults (the run's step had none of them).
        assert resume.changed_fields(record["config"], {**want, "progress_bar": False}) == {}
