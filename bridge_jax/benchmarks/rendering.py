"""The human-readable report of :func:`~bridge_jax.benchmarks.suite.run_benchmark`'s
results: one plain-text table per measurement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge_jax.benchmarks.measurement import find_ratio


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table; floats get 3 significant digits (or fewer decimals if large)."""

    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            if v != v:
                return "n/a"
            if abs(v) >= 100:
                return f"{v:,.0f}"
            return f"{v:.3g}"
        return str(v)

    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = lambda vals: "  ".join(v.rjust(w) for v, w in zip(vals, widths, strict=True))
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


def describe_worker_failures(row: dict) -> str | None:
    """One line for a worker's failures: the signal or exit status, and any retry."""
    failures = row.get("failures") or ([row["error"]] if row.get("error") else [])
    if not failures:
        return None
    first = failures[0].split("; stderr:")[0]
    if "died with" in first:
        first = first.split("died with")[-1].strip(" .<>")
    elif "exit status" in first:
        first = "exit status " + first.split("exit status")[-1].strip(" .")
    else:
        first = first[:80]
    return (f"failed ({first})" if row.get("error")
            else f"{first} on try 1, OK on retry")


def _header_lines(results: dict[str, Any]) -> list[str]:
    """The machine, versions, load and measured matmul peaks, then a blank line."""
    m = results["machine"]
    on = f" on {m['jax_backend']}" if m.get("jax_backend", "cpu") != "cpu" else ""
    out = [f"bridge_jax train-step benchmark: {m.get('cpu', '?')}, {m['cpu_count']} cores, "
           f"jax {m['jax']}{on}, torch "
           f"{(results['torch'] or {}).get('version', 'not installed')}, "
           f"load avg {m['load_avg_start'][0]:.1f} -> "
           f"{m.get('load_avg_end', m['load_avg_start'])[0]:.1f}"]
    if results.get("matmul_peak_flops"):
        out.append(f"matmul peak (float32 2048^2): JAX jitted "
                   f"{results['matmul_peak_flops'] / 1e9:.1f} GFLOP/s"
                   + (f", PyTorch {results['torch_matmul_peak_flops'] / 1e9:.1f} GFLOP/s; "
                      f"peak = {results['peak_flops'] / 1e9:.1f}"
                      if results.get("torch_matmul_peak_flops") else ""))
    return [*out, ""]


def ratio_header(key: str, like: str = "JAX/PyTorch") -> str:
    """A ratio column's header: ``like`` for a like-for-like ``ratio``, else e.g.
    "JAX gpu / PyTorch host cpu" for ``gpu_vs_host_cpu_ratio`` (two machines)."""
    if "_vs_host_" not in key:
        return like
    jax_side, rest = key.split("_vs_host_", 1)
    return f"JAX {jax_side} / PyTorch host {rest.split('_', 1)[0]}"


def _throughput_lines(results: dict[str, Any]) -> list[str]:
    rows = results.get("throughput") or []
    if not rows:
        return []
    key = find_ratio(rows[0])[0]
    like_for_like = "_vs_host_" not in key
    out = ["Train step (critic update + encoder/decoder update), examples/s, median of "
           f"{results['windows']} interleaved windows"]
    out.append(format_table(
        ["size", "batch", "JAX ex/s", "PyTorch ex/s", ratio_header(key), "compile s",
         "GFLOP/step", "JAX GFLOP/s", "JAX % peak", "PyTorch % peak", "ratio cap"],
        [[r["size"], r["batch"], r["jax_examples_per_s"], r["torch_examples_per_s"],
          find_ratio(r)[1], r["compile_s"], r["gflop_per_step"], r["gflops_achieved"],
          100 * r["share_of_peak"],
          100 * r["torch_share_of_peak"] if r.get("torch_share_of_peak") else None,
          1 / r["torch_share_of_peak"] if r.get("torch_share_of_peak") and like_for_like
          else None]
         for r in rows]))
    if not like_for_like:
        out.append("JAX ran on the accelerator and PyTorch on the host CPU: the ratio "
                   "compares two machines, not two implementations (no ratio cap)")
    elif any(r.get("torch_share_of_peak") for r in rows):
        out.append("ratio cap: the JAX/PyTorch ratio a JAX step running at 100% of peak "
                   "would reach (1 / PyTorch % peak)")
    return out


def _loss_check_lines(checks: list[dict]) -> list[str]:
    rows = []
    for c in checks:
        for s in c["steps"]:
            rows.append([c["size"], c["batch"], s["step"], s["jax_critic_loss"],
                         s["torch_critic_loss"], s["jax_generator_loss"],
                         s["torch_generator_loss"]])
        rows.append([c["size"], "", "max rel diff", f"{c['max_rel_diff']:.1e}",
                     f"rtol {c['rtol']:.0e}", "OK" if c["ok"] else "MISMATCH", ""])
    return ["Same losses from the same weights, batch and noise (JAX vs PyTorch):",
            format_table(["size", "batch", "step", "JAX critic", "torch critic",
                          "JAX gen", "torch gen"], rows)]


def _variant_lines(variants: list[dict]) -> list[str]:
    return ["Variants (interleaved within each size; examples/s):",
            format_table(["size", "batch", "variant", "ex/s", "compile s"],
                         [[v["size"], v["batch"], v["variant"], v["jax_examples_per_s"],
                           v.get("compile_s")] for v in variants])]


def _pipeline_lines(pipeline: list[dict]) -> list[str]:
    return ["Input pipeline (get_batch on the host, one thread) vs the step's consumption:",
            format_table(["dataset", "batch", "get_batch ex/s", "step ex/s", "headroom"],
                         [[p["dataset"], p["batch"], p["examples_per_s"],
                           p["step_consumes"], p["headroom"]] for p in pipeline])]


def _xla_flag_lines(flag_rows: list[dict]) -> list[str]:
    return ["XLA:CPU flags (one process per flag set; JAX and PyTorch interleaved in each):",
            format_table(
                ["size", "batch", "XLA_FLAGS", "JAX ex/s", "PyTorch ex/s", "JAX/PyTorch",
                 "error"],
                [[f["size"], f["batch"], f["xla_flags"], f.get("jax_examples_per_s"),
                  f.get("torch_examples_per_s"), f.get("ratio"), describe_worker_failures(f)]
                 for f in flag_rows])]


def _multidevice_lines(multidevice: dict[str, list[dict]]) -> list[str]:
    rows = []
    for size, ms in multidevice.items():
        base = next((x.get("examples_per_s") for x in ms if x.get("devices") == 1), None)
        for x in ms:
            rate = x.get("examples_per_s")
            rows.append([size, x["devices"], x.get("global_batch"), rate,
                         rate / base if rate and base else None, describe_worker_failures(x)])
    return ["Simulated CPU devices (same cores shared: overhead, not speed-up), fixed "
            "per-device batch:",
            format_table(["size", "devices", "global batch", "ex/s", "vs 1 device", "error"],
                         rows)]


def _sweep_lines(sweep: list[dict]) -> list[str]:
    key, key_one = find_ratio(sweep[0])[0], find_ratio(sweep[0], "ratio_one_per_program")[0]
    rows = [[r["size"], r["batch"], r["members"], r["jax_vmap"], r.get("jax_one_per_program"),
             r.get("torch_sequential"), r.get("torch_vmap"), r.get("best_torch"),
             find_ratio(r)[1], find_ratio(r, "ratio_one_per_program")[1],
             _vmap_check(r)] for r in sweep]
    return ["Sweep: N runs (seeds) trained at once, runs·steps/s (interleaved windows; "
            "JAX vmap = the trainer's N-member program, N=1 without vmap)",
            format_table(["size", "batch", "N", "JAX vmap", "JAX 1 program/run",
                          "PyTorch one by one", "PyTorch func.vmap", "best PyTorch",
                          ratio_header(key, "JAX vmap/best"),
                          ratio_header(key_one, "JAX 1 prog/best"), "func.vmap check"],
                         rows),
            "func.vmap check: largest relative gap between its losses and the runs' one by "
            "one (same weights, batches, noise; 2 steps), or why it failed"]


def _vmap_check(row: dict) -> str | None:
    if row.get("torch_vmap_error"):
        return "failed: " + row["torch_vmap_error"][:40]
    gap = row.get("torch_vmap_max_rel_diff")
    return None if gap is None else f"{gap:.1e}"


def _overhead_lines(overhead: list[dict]) -> list[str]:
    rows = [[o["config"], o["members"], o["batch"],
             f"{o['log_every']}/{o['sample_every']}/{o['checkpoint_every']}",
             o["steps_timed"], o["trainer_steps_per_s"], o["bare_steps_per_s"],
             o["trainer_over_bare"], " ".join(f"{p['trainer'] / p['bare']:.3f}"
                                             for p in o["pairs"])] for o in overhead]
    out = ["Trainer overhead: train_and_evaluate (evaluators off) vs the bare compiled step "
           "on the same batches, steps/s",
           format_table(["config", "members", "batch", "log/sample/ckpt every",
                         "steps timed", "trainer", "bare step", "trainer/bare",
                         "each pair"], rows)]
    for o in overhead:
        if o.get("profile"):
            out += ["", f"Where the trainer's time goes ({o['config']}, x{o['members']}, one "
                    "cProfile'd run, whole run):",
                    format_table(["part", "calls", "cumulative s"],
                                 [[p["part"], p["calls"], p["cumulative_s"]]
                                  for p in o["profile"]])]
    return out


# Optional sections, in report order: (results key, its lines).
_OPTIONAL_SECTIONS = (("loss_check", _loss_check_lines), ("variants", _variant_lines),
                      ("pipeline", _pipeline_lines), ("xla_flags", _xla_flag_lines),
                      ("multidevice", _multidevice_lines), ("sweep", _sweep_lines),
                      ("overhead", _overhead_lines))


def render(results: dict[str, Any]) -> str:
    """The human-readable report of :func:`run_benchmark`'s results."""
    out = _header_lines(results) + _throughput_lines(results)
    for key, section_lines in _OPTIONAL_SECTIONS:
        if results.get(key):
            out += [*([""] if out[-1] else []), *section_lines(results[key])]
    return "\n".join(out)
