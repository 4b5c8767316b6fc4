"""The plotting helper the check modules share (matplotlib axes in, nothing returned)."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ntkx._src.theory.result import PowerLawFit


def loglog_seeds(ax: Any, x: Any, ys: Any, label: str, fit: Optional[PowerLawFit] = None, *,
                 color: Any = None, errorbars: bool = False) -> None:
    """Values measured over several seeds against `x` on log-log axes, with their fitted power law.

    Args:
      ax: a matplotlib axes.
      x: `(n,)` abscissae (widths, sizes).
      ys: `(seeds, n)` values (or `(n,)`, one seed).
      label: the legend entry of the values.
      fit: the power law fitted to them, drawn as a line when given.
      color: the colour of points and line (matplotlib's cycle when None).
      errorbars: how the seeds are shown. False: every seed as a faint dot, their
        geometric mean as a marker labelled with the fitted exponent, the fit a solid line
        through `x`. True: the mean with +-1 standard deviation error bars, the fit a
        dashed line of 50 points labelled ``fit p = ...`` in the bars' colour; both axes
        are set to log scale.
    """
    ys = np.atleast_2d(ys)
    if errorbars:
        ax.errorbar(x, ys.mean(axis=0), yerr=ys.std(axis=0) if ys.shape[0] > 1 else None, fmt="o", label=label,
                    capsize=2, **({} if color is None else {"color": color}))
        if fit is not None:
            xx = np.geomspace(min(x), max(x), 50)
            ax.plot(xx, fit.predict(xx), "--", lw=1, color=ax.lines[-1].get_color() if ax.lines else None,
                    label=f"fit p = {fit.exponent:.2f}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        return
    ax.loglog(np.broadcast_to(x, ys.shape).ravel(), ys.ravel(), ".", color=color, alpha=0.35, ms=4)
    ax.loglog(x, np.exp(np.log(ys).mean(axis=0)), "o", color=color, ms=4,
              label=label if fit is None else f"{label}: {fit.exponent:.2f}")
    if fit is not None:
        ax.loglog(x, fit.predict(x), "-", color=color, lw=1)
