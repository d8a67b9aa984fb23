"""The package as pip installs it.

The wheel holds every module and config of the repository, installs into a fresh venv
that cannot see the repository, and trains a tiny config through the ``bridge-jax-train``
console script by config name; Python 3.10 is refused by the package's own
requires-python; the training side without the ``train`` extra names the extra; config
names resolve to the shipped files.

Dependencies are not downloaded: the fresh venv sees the already-installed ones through
a ``.pth`` file listing this interpreter's site-packages (a plain path line: the
editable install's own ``.pth`` hook there is not run), and the wheel is installed with
``--no-deps``; the test asserts that ``bridge_jax`` is then imported from the fresh
venv, not from the repository.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from bridge_jax import config_names, extras

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "bridge_jax", "configs")


def _run(args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=300, **kwargs)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the package's sources (no network, no build/ or
    egg-info left in the repository)."""
    tmp = tmp_path_factory.mktemp("wheel")
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tmp / "src" / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (tmp / "src").mkdir(exist_ok=True)
            shutil.copy2(src, tmp / "src" / name)
    r = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
              "--check-build-dependencies", "--no-index", "-q", "-w", tmp / "dist",
              tmp / "src"])
    assert r.returncode == 0, r.stdout + r.stderr
    (built,) = (tmp / "dist").glob("bridge_jax-*.whl")
    return built


def test_the_wheel_ships_every_module_the_configs_and_the_metadata(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    in_repo = {p.relative_to(ROOT).as_posix() for p in (ROOT / "bridge_jax").rglob("*.py")}
    in_repo |= {"bridge_jax/" + p.relative_to(ROOT).as_posix()
                for p in (ROOT / "configs").rglob("*.py")}
    assert in_repo - names == set(), "pyproject.toml [tool.setuptools] packages is missing some"
    assert "bridge_jax/py.typed" in names
    assert "bridge_jax/configs/ring.py" in names
    dist_info = f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert "Requires-Python: >=3.11" in metadata
    assert any(line.startswith("Requires-Dist: orbax-checkpoint") and "<1" in line
               for line in metadata.splitlines()), "orbax-checkpoint is not capped below 1.0"
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode()
    assert "bridge-jax-train = bridge_jax.main:run" in entry_points


def test_a_fresh_venv_installs_the_wheel_and_trains_by_config_name(wheel, tmp_path):
    venv = tmp_path / "venv"
    r = _run([sys.executable, "-m", "venv", "--without-pip", venv])
    assert r.returncode == 0, r.stderr
    site = Path(sysconfig.get_path("purelib", vars={"base": venv, "platbase": venv}))
    deps = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site / "_bridge_jax_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    python = venv / "bin" / "python"
    r = _run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel])
    assert r.returncode == 0, r.stdout + r.stderr

    elsewhere = tmp_path / "elsewhere"  # no repository, no configs/ here
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = _run([python, "-c", "import bridge_jax.main, bridge_jax.configs as c; "
              "print(bridge_jax.__file__); print(c.__file__)"], cwd=elsewhere, env=env)
    assert r.returncode == 0, r.stderr
    for path in r.stdout.split():
        assert Path(path).is_relative_to(site), f"imported from {path}, not the fresh venv"

    script = venv / "bin" / "bridge-jax-train"
    assert script.read_text().splitlines()[0] == f"#!{python}"
    # Compiled without most XLA optimizations (about twice as fast to compile; what is
    # checked here is that the installed package trains, not how fast).
    r = _run([script, "--config=ring:tiny", f"--workdir={tmp_path / 'run'}"],
             cwd=elsewhere, env={**env, "JAX_DISABLE_MOST_OPTIMIZATIONS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "bridge_jax: done: 4 steps" in r.stdout
    assert (tmp_path / "run" / "summary.json").exists()


def _python310() -> str | None:
    """A working Python 3.10 interpreter with pip, if this machine has one."""
    candidates = [shutil.which("python3.10"),
                  *glob.glob(str(Path.home() / ".pyenv/versions/3.10*/bin/python3.10"))]
    for candidate in filter(None, candidates):
        r = _run([candidate, "-m", "pip", "--version"])
        if r.returncode == 0 and "python 3.10" in r.stdout:
            return candidate
    return None


def test_python_3_10_is_refused_by_the_packages_own_requires_python(wheel, tmp_path):
    python310 = _python310()
    if python310 is None:
        pytest.skip("no Python 3.10 interpreter with pip on this machine")
    r = _run([python310, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index",
              "--target", tmp_path / "t", wheel])
    assert r.returncode != 0
    assert "requires a different Python" in r.stderr and ">=3.11" in r.stderr, r.stderr


# ------------------------------------------------------------------------- the train extra
def test_the_train_extra_lists_what_pyproject_toml_lists():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    train = pyproject["project"]["optional-dependencies"]["train"]
    names = {req.split(">")[0].split("<")[0].split("=")[0].strip() for req in train}
    assert names == set(extras.TRAIN_EXTRA)


def test_the_training_side_without_the_extra_names_the_extra_and_the_core_still_imports():
    code = ("import sys; sys.modules['flax'] = None  # as if flax were not installed\n"
            "from bridge_jax import divergences, losses, schedules\n"
            "import bridge_jax.train\n")
    r = _run([sys.executable, "-c", code], cwd=ROOT)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last == ("ImportError: bridge_jax.train needs the training extra (not installed: "
                    "flax): pip install 'bridge_jax[train]'"), r.stderr


# ----------------------------------------------------------------------------- config names
def test_config_names_resolve_to_the_shipped_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here: names, not relative paths
    shipped = config_names.configs_dir()
    assert config_names.resolve("ring") == f"{shipped / 'ring.py'}"
    assert config_names.resolve("ring:tiny") == f"{shipped / 'ring.py'}:tiny"
    assert config_names.resolve("sweeps/ring") == f"{shipped / 'sweeps' / 'ring.py'}"
    assert config_names.resolve("configs/grid.py:tiny") == f"{shipped / 'grid.py'}:tiny"
    own = tmp_path / "ring"  # an existing file wins over the shipped name
    own.write_text("")
    assert config_names.resolve("ring") == "ring"
    argv = ["prog", "--config", "mnist:tiny", "--config.batch_size=8", "--", "--config=x"]
    assert config_names.resolve_config_flag(argv) == [
        "prog", "--config", f"{shipped / 'mnist.py'}:tiny", "--config.batch_size=8", "--",
        "--config=x"]
    with pytest.raises(config_names.UnknownConfigError, match=r"'rnig' \(shipped: celeba"):
        config_names.resolve("rnig")
    for missing_file in ("configs/rnig.py:tiny", "/no/such/ring.py", "../ring"):
        assert config_names.resolve(missing_file) == missing_file  # the loader reports it
    assert "__init__" not in " ".join(config_names.shipped_names())


def test_an_unknown_config_name_is_one_line_and_exit_2(tmp_path):
    r = _run([sys.executable, "-m", "bridge_jax.main", "--config=rnig:tiny",
              f"--workdir={tmp_path}"], cwd=ROOT)
    assert r.returncode == 2
    assert r.stderr.startswith("bridge_jax: error: --config=rnig:tiny: no such file, and no "
                               "shipped config named 'rnig' (shipped: celeba, cifar10, ")
    assert len(r.stderr.strip().splitlines()) == 1

