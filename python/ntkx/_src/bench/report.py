"""``ntkx bench``'s report: ``report.md`` and three PNGs from a results document (`run.run`).

* ``time_vs_n.png``: median seconds against N on log axes, one panel per suite with several
  sizes, one line per (case family, peer), and an O(N^2) guide through ntkx's smallest case.
* ``roofline.png``: each timed result at (flops per byte, GFLOP/s) under the machine's roofs
  (the FMA peak and the triad bandwidth, all cores; the dgemm rate dashed).
* ``speedup.png``: ntkx's speed-up over each peer per case (entries per second over the
  peer's, so a peer timed on fewer points compares fairly), on a log axis with 1 marked.

Figures are made with ``matplotlib.figure.Figure`` (no pyplot, no global backend) and every
file is written atomically (`durable.atomic_write`). matplotlib is imported only here.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

from ntkx._src import durable

FIGURE_DPI = 110
FIGURES = ("time_vs_n.png", "roofline.png", "speedup.png")


def _cell(v: Any) -> str:
    return " ".join(str(v).split()).replace("|", "\\|")


def _fmt(v: float, digits: int = 4) -> str:
    return f"{v:.{digits}g}"


def machine_section(m: Mapping[str, Any]) -> List[str]:
    """The machine model as Markdown: what the CPU is, its nominal peak, and what was measured."""
    cpu = m["cpu"]
    nominal = cpu.get("nominal_peak_gflops") or {}
    lines = ["## Machine", "",
             f"- CPU: {cpu['model']} ({cpu.get('vendor')}, family/model/stepping "
             f"{'/'.join(str(x) for x in cpu.get('family_model_stepping') or [])}), {cpu['cores']} cores"
             f"{', under ' + cpu['hypervisor'] if cpu.get('hypervisor') else ''}, "
             f"{cpu['simd_bits']}-bit SIMD ({', '.join(cpu['flags'])}), clock {cpu.get('mhz')} MHz",
             f"- caches: {', '.join(f'{k} {v}' for k, v in cpu.get('caches', {}).items()) or 'unknown'}",
             f"- measured {m['measured']} (load average {m['load_average']}, {m['probe_seconds']} s per probe"
             f"{', cached' if m.get('cached') else ''})", "",
             "| limit | one core | all cores | nominal (all cores) | how |", "|---|---:|---:|---:|---|"]
    fma = m["fma"]
    for dt in ("float64", "float32"):
        if dt in fma:
            lines.append(f"| FMA peak {dt} [GFLOP/s] | {fma[dt]['one_core_gflops']:.1f} | "
                         f"{fma[dt]['all_cores_gflops']:.1f} | {nominal.get(dt, float('nan')):.1f} | {fma['method']} |")
    if "error" in fma:
        lines.append(f"| FMA peak | - | - | - | not measured: {_cell(fma['error'])} |")
    for dt in ("float64", "float32"):
        g = m["gemm"][dt]
        lines.append(f"| GEMM {dt} [GFLOP/s] | {g['one_core_gflops']:.1f} | {g['all_cores_gflops']:.1f} | | "
                     f"{m['gemm']['method']} |")
    t = m["triad"]
    lines.append(f"| triad bandwidth [GB/s] | {t['one_core_gbs']:.1f} | {t['all_cores_gbs']:.1f} | | {t['method']} |")
    cuda = m["cuda"]
    lines += ["", f"- nominal peak: {cpu.get('nominal_rule')}",
              "- CUDA: " + (f"{cuda.get('name') or 'device'} x{cuda.get('devices')}; GEMM {json.dumps(cuda.get('gemm'))}"
                            if cuda.get("present") else f"absent ({cuda.get('reason')})"),
              "- BLAS and threads: " + "; ".join(
                  f"{p['user_api']} {p['internal_api']} {p.get('version') or ''} ({p.get('architecture') or '-'}), "
                  f"{p['num_threads']} threads" for p in m["blas"]), ""]
    return lines


def _results_table(rows: Sequence[Mapping[str, Any]], speed: Mapping[str, Mapping[str, float]]) -> List[str]:
    lines = ["| case | peer | median [s] | spread | rounds | entries/s | GFLOP/s | roofline | speed-up | check |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['case']} | {r['peer']} | **{r['status']}** | | | | | | | {_cell(r.get('reason', ''))} |")
            continue
        tm = r["timing"]
        sp = speed.get(r["case"], {}).get(r["peer"])
        chk = r.get("check") or {}
        lines.append(
            f"| {r['case']} | {r['peer']}{' (' + r['compiled'] + ')' if r.get('compiled') else ''} | "
            f"{_fmt(tm['median'])} | {tm['spread']:.1%} | {tm['rounds']} | {_fmt(r['entries_per_second'])} | "
            f"{_fmt(r['gflops'], 3) if 'gflops' in r else '-'} | "
            f"{format(r['roofline_fraction'], '.1%') if 'roofline_fraction' in r else '-'} | "
            f"{_fmt(sp, 3) + 'x' if sp is not None else ''} | {chk.get('error', 0):.1e} <= {chk.get('tol', 0):g} |")
    return lines


def group_by(results: Sequence[Mapping[str, Any]], key: str) -> Dict[str, List[Mapping[str, Any]]]:
    """The records by their `key` field ('suite', 'case'), in first-seen order."""
    out: Dict[str, List[Mapping[str, Any]]] = {}
    for r in results:
        out.setdefault(r[key], []).append(r)
    return out


def _ratio_lines(results: Sequence[Mapping[str, Any]], key: str, base: Any, label: str) -> List[str]:
    """Rows of a derived table: each ok ntkx result's speed against the same problem's with ``params[key] == base``."""
    ok = [r for r in results if r["status"] == "ok" and r["peer"] == "ntkx"]

    def problem(r: Mapping[str, Any]) -> str:  # the parameters other than `key`
        return json.dumps({k: v for k, v in r["params"].items() if k != key}, sort_keys=True, default=str)

    ref = {problem(r): r for r in ok if r["params"].get(key) == base}
    lines = []
    for r in ok:
        b = ref.get(problem(r))
        if b is not None and b is not r:
            lines.append(f"| {r['case']} | {b['timing']['median'] / r['timing']['median']:.2f} {label} |")
    return lines


def render_markdown(doc: Mapping[str, Any]) -> str:
    """The whole ``report.md``."""
    prov, results, speed = doc["provenance"], doc["results"], doc["speedups"]
    git = prov.get("git")
    commit = "not a git checkout" if not git else git["commit"] + (" (dirty)" if git["dirty"] else "")
    v = prov["versions"]
    lines = [
        "# ntkx bench", "",
        f"- command: `{prov['command']}`",
        f"- ntkx {prov['ntkx_version']}, commit {commit}, build {json.dumps(prov['build_info'])}",
        f"- numpy {v.get('numpy')}, scipy {v.get('scipy')}, jax {v.get('jax')}, neural-tangents "
        f"{v.get('neural-tangents')}, dask {v.get('dask')}; Python {prov['python']} on {prov['platform']}",
        f"- started {prov['started']}, total {prov['total_seconds']:.0f} s, status: {prov['status']}",
        f"- load average (1, 5, 15 min) at start {prov['load_average_start']}, at end {prov['load_average_end']}: "
        "well above 0 before the run means other work shared these cores",
        "",
        "Times are medians of the timed calls after one untimed warm-up; spread is half the interquartile "
        "range over the median. Every output was checked against the reference named in the last column "
        "before it was timed. `roofline` is the achieved GFLOP/s of the problem's counted work over "
        "min(FMA peak, intensity x triad bandwidth) at the case's thread count; `speed-up` is ntkx's "
        "entries per second over that peer's (the baseline's, for precompute).", "",
    ]
    lines += machine_section(doc["machine"])
    for suite, rows in group_by(results, "suite").items():
        lines += [f"## {suite}", ""] + _results_table(rows, speed) + [""]
        if suite == "dtype":
            extra = _ratio_lines(rows, "dtype", "float64", "x faster than float64")
            if extra:
                lines += ["| case | float32 against float64 (ntkx) |", "|---|---|"] + extra + [""]
        if suite == "threads":
            extra = _ratio_lines(rows, "threads", 1, "x the speed of 1 thread")
            if extra:
                lines += ["| case | speed-up over 1 thread (ntkx) |", "|---|---|"] + extra + [""]
        if suite == "precompute":
            for r in rows:
                if r["status"] == "ok" and "tiles_per_second" in r:
                    lines.append(f"- {r['peer']}: {r['tiles_per_second']:.3g} tiles/s, "
                                 f"{r['entries_per_second']:.3g} entries/s ({r['tiles']} tiles)")
            lines.append("")
    lines += ["## Figures", ""] + [f"![{f}]({f})" for f in FIGURES] + [""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Figures


def plot_time_vs_n(doc: Mapping[str, Any]):
    """``(fig, axes)``: median seconds against N per suite, log-log, with an O(N^2) guide."""
    from matplotlib.figure import Figure

    ok = [r for r in doc["results"] if r["status"] == "ok"]
    curves: Dict[str, Dict[Any, List]] = {}
    for r in ok:
        curves.setdefault(r["suite"], {}).setdefault((r["family"], r["peer"]), []).append(
            (r["params"].get("N_neural_tangents") if r["peer"] == "neural_tangents" and r["params"].get(
                "N_neural_tangents") else r["size"], r["timing"]["median"]))
    suites = [s for s, c in curves.items() if any(len(v) > 1 for v in c.values())] or list(curves)[:1]
    fig = Figure(figsize=(5.5 * max(1, len(suites)), 4.2))
    axes = fig.subplots(1, max(1, len(suites)), squeeze=False)[0]
    for ax, suite in zip(axes, suites):
        guide_at = None
        for (fam, peer), pts in sorted(curves.get(suite, {}).items()):
            pts = sorted(pts)
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            ax.loglog(xs, ys, "o-" if peer == "ntkx" else ".--", lw=1.2 if peer == "ntkx" else 0.8, ms=4,
                      label=f"{fam.split('/', 1)[-1]} {peer}")
            if peer == "ntkx" and len(xs) > 1 and guide_at is None:
                guide_at = (xs, ys[0])
        if guide_at is not None:
            xs, y0 = guide_at
            ax.loglog(xs, [y0 * (x / xs[0]) ** 2 for x in xs], "k:", lw=1, label="O(N^2) guide")
        ax.set_xlabel("N")
        ax.set_ylabel("median seconds")
        ax.set_title(suite)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig, axes


def plot_roofline(doc: Mapping[str, Any]):
    """``(fig, ax)``: every result with a work model at (intensity, GFLOP/s) under the roofs (all cores, float64)."""
    from matplotlib.figure import Figure

    m = doc["machine"]
    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    pts = [r for r in doc["results"] if r["status"] == "ok" and "gflops" in r]
    bw = m["triad"]["all_cores_gbs"]
    peak = m["fma"]["float64"]["all_cores_gflops"] if "float64" in m["fma"] else m["gemm"]["float64"]["all_cores_gflops"]
    lo = min([r["work"]["intensity"] for r in pts] + [0.1]) / 2
    hi = max([r["work"]["intensity"] for r in pts] + [100.0]) * 2
    xs = [lo * (hi / lo) ** (i / 100) for i in range(101)]
    ax.loglog(xs, [min(peak, x * bw) for x in xs], "k-", lw=1.5, label=f"roof: FMA {peak:.0f} GFLOP/s, {bw:.0f} GB/s")
    ax.axhline(m["gemm"]["float64"]["all_cores_gflops"], color="gray", ls="--", lw=1, label="dgemm")
    markers = {"ntkx": "o", "numpy_gram": "s", "numpy_recursion": "^", "neural_tangents": "v"}
    for peer in sorted({r["peer"] for r in pts}):
        sel = [r for r in pts if r["peer"] == peer]
        ax.loglog([r["work"]["intensity"] for r in sel], [r["gflops"] for r in sel], markers.get(peer, "x"),
                  ms=5, alpha=0.8, label=peer)
    ax.set_xlabel("flops per byte (counted work / bytes moved)")
    ax.set_ylabel("achieved GFLOP/s")
    ax.set_title("roofline position of each timed result")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, ax


def plot_speedup(doc: Mapping[str, Any]):
    """``(fig, ax)``: ntkx's speed-up over each peer per case, log axis, 1 marked."""
    from matplotlib.figure import Figure

    rows = [(c, p, x) for c, peers in doc["speedups"].items() for p, x in peers.items()]
    fig = Figure(figsize=(7, max(2.5, 0.22 * len(rows) + 1)))
    ax = fig.subplots()
    if rows:
        ys = list(range(len(rows)))
        ax.barh(ys, [x for _, _, x in rows], color=["C0" if x >= 1 else "C3" for _, _, x in rows])
        ax.set_yticks(ys)
        ax.set_yticklabels([f"{c} / {p}" for c, p, _ in rows], fontsize=6)
        ax.set_xscale("log")
        ax.axvline(1.0, color="k", lw=1)
        ax.invert_yaxis()
    ax.set_xlabel("speed-up (entries/s of ntkx or the baseline over the peer's)")
    fig.tight_layout()
    return fig, ax


def write_report(doc: Mapping[str, Any], out: os.PathLike) -> None:
    """Writes ``out/report.md`` and ``out/{time_vs_n,roofline,speedup}.png`` (each atomically)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, plot in zip(FIGURES, (plot_time_vs_n, plot_roofline, plot_speedup)):
        fig = plot(doc)[0]
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=FIGURE_DPI)
        durable.atomic_write(out / name, buf.getvalue())
    durable.atomic_write(out / "report.md", render_markdown(doc).encode())
