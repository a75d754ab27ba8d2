"""Pictures of tempering runs (matplotlib, from the `examples` extra)."""

from __future__ import annotations

import numpy as np

from .core import schedule


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'hamon-nnx[examples]'") from err
    return plt


def plot_barrier(plan_or_report, path: str | None = None):
    """The local barrier lambda(beta), the cumulative barrier and the ladder.

    Args:
        plan_or_report: an `NRPTPlan` that has sampled, or its `NRPTReport`.
        path: optional file to save the figure to (PNG, PDF, ...).

    Returns:
        The matplotlib Figure.

    Example:
        >>> import jax, hamon_nnx as hn
        >>> m = hn.IsingModel.lattice((6, 6), coupling=0.6)
        >>> _, report = hn.autosample(m, jax.random.key(0), n_samples=200, max_rounds=64)
        >>> fig = hn.plots.plot_barrier(report)
        >>> len(fig.axes)
        2
    """
    report = plan_or_report.report() if hasattr(plan_or_report, "report") else plan_or_report
    ladder = np.asarray(report.ladder, np.float64)
    rejection = 1.0 - np.asarray(report.acceptance, np.float64)
    Lambda, lam = schedule.barrier_function(ladder, rejection)
    grid = np.linspace(0.0, 1.0, 401)
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 5.6), sharex=True)
    top.plot(grid, lam(grid), color="C0")
    top.plot(ladder, lam(ladder), "o", color="C0", markersize=4)
    top.set_ylabel(r"local barrier $\lambda(\beta)$")
    top.set_ylim(bottom=0)
    top.set_title(
        f"N = {report.n_chains}, $\\Lambda$ = {report.total_barrier:.2f}, "
        f"round trips {report.round_trip_rate:.3f}/round "
        f"(predicted {report.predicted_round_trip_rate_ladder:.3f})",
        fontsize=10,
    )
    bottom.plot(grid, Lambda(grid), color="C1")
    bottom.plot(ladder, Lambda(ladder), "o", color="C1", markersize=4)
    for b in ladder:
        bottom.axvline(b, color="0.85", linewidth=0.8, zorder=0)
    bottom.set_xlabel(r"inverse temperature $\beta$ (ladder slots marked)")
    bottom.set_ylabel(r"cumulative barrier $\Lambda(\beta)$")
    bottom.set_xlim(0, 1)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
