"""``ntkx bench``: the benchmark harness as an installed command (DESIGN.md section 4, issue 16).

Modules: `machine` (the measured machine model, cached per machine), `cases` (the one home
of every case and peer, shared with ``pytest bench/``), `suites` (which cases run at which
scale), `timing` (warm-up, rounds, the median's confidence interval), `run` (the runner),
`report` (``report.md`` and the PNGs) and `compare` (``ntkx bench compare``).
"""
