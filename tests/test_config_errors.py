"""Bad configs, config files and workdirs are refused in one line, before anything is
allocated or compiled (issue 22, items 5 and 6).

The CLI cases run ``python -m bridge_jax.main`` in subprocesses (a few at a time: each
only imports JAX and exits) and check exit status 2, exactly one ``bridge_jax: error:``
line and no traceback; the pieces behind them (variants, the memory bound, the workdir
probe) are tested in-process.
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import pytest

from bridge_jax import config_files, configuration, models, step_memory, train_state
from tests.train_helpers import ROOT

CONFIGS = ROOT / "configs"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    return env


def _run_cli(args: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    # Without the fixes some of these would train (or allocate) for minutes: time out.
    return subprocess.run([sys.executable, "-m", "bridge_jax.main", *args], cwd=cwd,
                          env=_env(), capture_output=True, text=True, timeout=90)


def _error_line(result: subprocess.CompletedProcess) -> str:
    """The one error line of a refused run (exit 2, no traceback)."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("bridge_jax: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def _run_all(cases: list[tuple[list[str], str]]) -> None:
    """Runs every case's CLI (4 at a time); each must fail with a line containing its text."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_run_cli, [args for args, _ in cases]))
    for (args, expected), result in zip(cases, results, strict=True):
        line = _error_line(result)
        assert expected in line, (args, line)


# ---------------------------------------------------------------------------------------
# item 5: variants are explicit


def test_unknown_variants_are_refused_naming_the_variants(tmp_path):
    # --config.num_steps=0: had the variant been ignored, validation would name num_steps.
    stop = ["--config.num_steps=0", f"--workdir={tmp_path / 'w'}"]
    _run_all([
        (["--config=configs/ring.py:bogus", *stop], "has no variant 'bogus'"),
        (["--config=configs/ring.py:TINY", *stop], "has no variant 'TINY'"),
        (["--config=configs/ring.py:", *stop], "has no variant ''"),
        (["--config=configs/mnist.py:TINY", *stop], "its variants are configs/mnist.py:tiny"),
        (["--config=configs/mixture.py:ring,bogus", *stop], "has no variant 'ring,bogus'"),
        (["--config=configs/sweeps/ring.py:full", *stop], "has no variant 'full'"),
        (["--config=configs/sweeps/methods.py:tiny", *stop], "has no variants"),
    ])
    assert not (tmp_path / "w").exists()


def test_every_shipped_variant_loads_and_validates(tmp_path):
    # methods.py and the tuning*.py protocols are data that sweeps read, not configs to run
    files = sorted(p for p in CONFIGS.rglob("*.py") if p.name not in ("__init__.py", "methods.py")
                   and not p.name.startswith("tuning"))
    assert len(files) >= 13
    for path in files:
        module = config_files.load_module(path)
        assert module.VARIANTS, path
        for arg in (None, *module.VARIANTS):
            config = config_files.load_experiment(f"{path}:{arg}" if arg else str(path))
            if config.data.name == "tfds":  # read offline from a prepared folder
                config.data.data_dir = str(tmp_path)
            configuration.validate_config(config)


def test_config_from_file_checks_the_variant_too():
    assert configuration.config_from_file(CONFIGS / "ring.py", "tiny").num_steps == 4
    with pytest.raises(configuration.ConfigError, match="has no variant 'Tiny'"):
        configuration.config_from_file(CONFIGS / "ring.py", "Tiny")


def test_empty_workdir_is_refused_and_nothing_is_written(tmp_path):
    line = _error_line(_run_cli(["--config=configs/ring.py:tiny", "--workdir="],
                                cwd=tmp_path))
    assert "workdir='' is empty" in line
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------
# item 6: one line, not a traceback


BAD_FILES = {
    "syntax_error.py": ("def get_config(:\n    pass\n", "has a syntax error at line 1"),
    "returns_dict.py": ("def get_config():\n    return {'seed': 0}\n",
                        "returned a dict, not an ml_collections.ConfigDict"),
    "returns_none.py": ("def get_config():\n    pass\n", "returned a NoneType"),
    "no_get_config.py": ("SEED = 0\n", "defines no get_config() function"),
    "raises.py": ("def get_config():\n    return {}['x']\n",
                  "failed: KeyError: 'x' (at "),
    "fails_on_import.py": ("import no_such_module_here\n",
                           "failed to load: ModuleNotFoundError"),
    "needs_an_argument.py": ("def get_config(arg):\n    pass\n",
                             "TypeError: get_config() missing 1 required positional argument"),
    "null_byte.py": ("SEED = 0\x00\n", "has a syntax error: "),  # no line to name
}


def test_broken_config_files_are_one_line(tmp_path):
    cases = []
    for name, (source, expected) in BAD_FILES.items():
        (tmp_path / name).write_text(source)
        # an override too: it used to be misreported as an unknown field
        cases.append(([f"--config={tmp_path / name}", f"--workdir={tmp_path / 'w'}",
                       "--config.seed=1"], expected))
    cases.append((["--config=configs/sweeps/methods.py", f"--workdir={tmp_path / 'w'}"],
                  "is not an experiment config: unknown config field(s) runs"))
    _run_all(cases)


def test_impossible_values_are_one_line(tmp_path):
    ring, mnist = "--config=configs/ring.py:tiny", "--config=configs/mnist.py:tiny"
    cases = [
        ([ring, "--config.num_steps=1000000000000"], "num_steps=1000000000000 is more than"),
        ([ring, "--config.alpha.transition_steps=1000000000000"],
         "alpha.transition_steps=1000000000000 must be below 2**31"),
        ([ring, "--config.critic.steps=1000000000000"], "critic.steps=1000000000000 is above"),
        ([mnist, "--config.data.image_size=1"], "data.image_size=1 does not fit"),
        ([mnist, "--config.data.image_size=30"], "which takes images of side 28, 32, 64"),
        ([ring, "--config.num_final_samples=1000000000000"],
         "num_final_samples=1000000000000 cannot fit"),
    ]
    if os.path.isdir("/proc/self"):  # refused even to root, whom os.access lets through
        cases.append(([ring, "--workdir=/proc/x"], "workdir='/proc/x' is not writable"))
    _run_all([(args if any(a.startswith("--workdir") for a in args)
               else [*args, f"--workdir={tmp_path / str(i)}"], expected)
              for i, (args, expected) in enumerate(cases)])


def test_batch_refusal_states_the_bound_and_the_available_memory(tmp_path):
    line = _error_line(_run_cli(["--config=configs/ring.py:tiny", f"--workdir={tmp_path}",
                                 "--config.batch_size=1000000000"]))
    # 10**9 × (152 B on the CPU device + the 8 B example the data pipeline builds)
    assert "needs at least 149.0 GiB of host memory" in line, line
    assert "1,000,000,000 examples × 152 B" in line and "is available" in line, line


# ---------------------------------------------------------------------------------------
# the pieces: the memory bound, the workdir probe, field lists


def _config(name: str, arg: str | None = None, **fields):
    config = configuration.config_from_file(CONFIGS / f"{name}.py", arg)
    for key, value in fields.items():
        configuration.set_field(config, key.replace("__", "."), value)
    return config


@pytest.mark.parametrize(("name", "fields"), [
    ("ring", {}), ("ring", {"method": "nsgan"}), ("mnist", {}),
    ("mnist", {"method": "nsgan", "model__width": 8}), ("cifar10", {}),
    ("celeba", {"model__latent_dim": 3}),
])
def test_weight_count_is_a_lower_bound(name, fields):
    config = _config(name, **fields)
    shape = step_memory.example_shape(config)
    nets = models.make_models(train_state.model_config(config), shape)
    params = jax.eval_shape(lambda: models.init_params(
        nets, jax.random.key(0), shape, config.model.latent_dim))
    exact = sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(params))
    bound = step_memory.lower_bound(config).num_params
    assert 0.2 * exact < bound <= exact, (bound, exact)


def test_memory_bound_scales_with_batch_devices_and_members():
    config = _config("ring", "tiny")
    one = step_memory.lower_bound(config)
    config.batch_size *= 4
    four = step_memory.lower_bound(config)
    assert four.per_device - one.per_device == 3 * 16 * one.bytes_per_example
    assert step_memory.lower_bound(config, num_devices=4).per_device == one.per_device
    assert four.host_batch == 4 * one.host_batch == 4 * 16 * 2 * 4
    config.sweep.num_seeds = 3
    assert step_memory.lower_bound(config).per_device == 3 * four.per_device


def test_accelerator_memory_is_checked_per_device(monkeypatch):
    config = _config("mnist", "tiny")
    need = step_memory.lower_bound(config).per_device
    monkeypatch.setattr(step_memory, "device_available_bytes", lambda device: need - 1)
    with pytest.raises(configuration.ConfigError, match=r"on each cpu device .* is available"):
        configuration.validate_config(config)
    monkeypatch.setattr(step_memory, "device_available_bytes", lambda device: need)
    monkeypatch.setattr(step_memory, "host_available_bytes", lambda: 10**12)
    configuration.validate_config(config)


def test_host_memory_is_read():
    free = step_memory.host_available_bytes()
    assert free is None or free > 0


def test_workdir_probe_leaves_nothing_behind(tmp_path):
    configuration.validate_config(_config("ring", "tiny"), workdir=str(tmp_path / "a" / "b"))
    (tmp_path / "c").mkdir()
    configuration.validate_config(_config("ring", "tiny"), workdir=str(tmp_path / "c"))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["c"]
    for bad in ("", "  "):
        with pytest.raises(configuration.ConfigError, match="is empty"):
            configuration.validate_config(_config("ring", "tiny"), workdir=bad)


def test_flag_value_reads_the_config_flag_as_absl_does():
    argv = ["prog", "--config=a.py:tiny", "--config.seed=1", "--workdir", "w"]
    assert config_files.flag_value(argv, "config") == "a.py:tiny"
    assert config_files.flag_value(argv, "workdir") == "w"
    assert config_files.flag_value(["prog", "--config", "b.py", "--", "--config=c"],
                                   "config") == "b.py"
    assert config_files.flag_value(["prog"], "config") is None


def test_long_field_lists_are_shortened():
    config = configuration.config_from_file(CONFIGS / "ring.py", "tiny")
    for name in ("data", "alpha"):
        del config[name]
    problem = configuration.field_name_problem(config)
    assert problem.count(",") == 7 and "more missing" in problem, problem


def test_config_file_loader_reports_the_line_of_a_syntax_error(tmp_path):
    path = tmp_path / "c.py"
    path.write_text(textwrap.dedent("""\
        import ml_collections

        def get_config():
            return ml_collections.ConfigDict({'a': 1)
    """))
    with pytest.raises(configuration.ConfigError, match="syntax error at line 4"):
        config_files.load_config(path)
