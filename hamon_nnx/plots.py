"""Pictures: sample grids, RBM filters, training curves, the tempering barrier,
energy and magnetization against beta (matplotlib, from the `examples` extra).

Figures are drawn with the non-interactive Agg backend unless another one
is already active; every function returns the Figure and saves it when
given a path."""

from __future__ import annotations

import os
import sys

import numpy as np

from .core import schedule
from .core.distributed import is_writer


def _save(fig, path, dpi: int) -> None:
    """Save the figure; over several processes, process 0 alone writes it."""
    if is_writer():
        fig.savefig(path, dpi=dpi)


def _pyplot():
    try:
        import matplotlib

        if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
            matplotlib.use("Agg")  # headless default; notebooks set MPLBACKEND themselves
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'hamon-nnx[examples]'") from err
    return plt


def plot_barrier(plan_or_report, path: str | os.PathLike | None = None):
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
        f"N = {report.n_betas}, $\\Lambda$ = {report.total_barrier:.2f}, "
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
        _save(fig, path, dpi=120)
    return fig


def _as_images(samples, image_shape) -> np.ndarray:
    """(..., n) states -> (m, *image_shape) images; leading axes are flattened."""
    x = np.asarray(samples)
    size = int(np.prod(image_shape))
    if x.ndim < 1 or x.shape[-1] < size:
        raise ValueError(
            f"samples must have shape (..., n) with n >= {size} for images {tuple(image_shape)}, "
            f"got {x.shape}"
        )
    # visible units come first (RBM states hold the hidden units after them)
    return x.reshape(-1, x.shape[-1])[:, :size].reshape(-1, *image_shape)


def plot_samples(
    samples,
    image_shape=(8, 8),
    path: str | os.PathLike | None = None,
    *,
    n: int = 64,
    ncols: int | None = None,
    levels: int | None = None,
    title: str | None = None,
):
    """A grid of states drawn as images (samples, data, inpaintings).

    Args:
        samples: states (..., n_variables); leading axes (chain, draw) are
            flattened and the first `n` images drawn. Only the first
            prod(image_shape) variables are drawn (an RBM's visible units).
        image_shape: (height, width) of one image.
        path: optional file to save the figure to.
        n: at most this many images.
        ncols: images per row (default about sqrt(n)).
        levels: the number of values (grey levels) a variable takes; default
            from the data (spins -1/+1 and binary 0/1 both draw black/white).
        title: optional figure title.

    Returns:
        The matplotlib Figure.

    Example:
        >>> import numpy as np, hamon_nnx as hn
        >>> fig = hn.plots.plot_samples(np.eye(16, dtype="int8"), (4, 4), n=8)
        >>> len(fig.axes)
        8
    """
    images = _as_images(samples, image_shape)[: max(int(n), 1)]
    if len(images) == 0:
        raise ValueError("no samples to draw")
    lo = -1 if images.min() < 0 else 0
    hi = (lo + levels - 1) if levels is not None else max(int(images.max()), lo + 1)
    if lo == -1:
        hi = 1
    count = len(images)
    ncols = int(ncols) if ncols else int(np.ceil(np.sqrt(count)))
    nrows = int(np.ceil(count / ncols))
    plt = _pyplot()
    scale = 0.9 if image_shape[0] <= 16 else 1.4
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(scale * ncols, scale * nrows + (0.4 if title else 0)), squeeze=False
    )
    for k, ax in enumerate(axes.ravel()):
        if k < count:
            ax.imshow(images[k], cmap="gray_r", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            fig.delaxes(ax)
    if title:
        fig.suptitle(title, fontsize=10)
    # a gap between panels: two dark images side by side would read as one
    fig.tight_layout(pad=0.3, h_pad=0.5, w_pad=0.5, rect=(0, 0, 1, 0.95 if title else 1))
    if path is not None:
        _save(fig, path, dpi=100)
    return fig


def plot_filters(
    rbm, image_shape=(8, 8), path: str | os.PathLike | None = None, *, n: int | None = None
):
    """The weights of each RBM hidden unit drawn as an image (its receptive field).

    Each filter W[:, j] shares one symmetric colour scale (red positive,
    blue negative); units are ordered by the norm of their weights.

    Args:
        rbm: an `hn.RBM` whose visible units form images of `image_shape`.
        image_shape: (height, width).
        path: optional file to save the figure to.
        n: at most this many hidden units (default all).

    Returns:
        The matplotlib Figure.

    Example:
        >>> import hamon_nnx as hn
        >>> from flax import nnx
        >>> fig = hn.plots.plot_filters(hn.RBM(16, 6, rngs=nnx.Rngs(0)), (4, 4))
        >>> len(fig.axes)  # six filters and the colour bar
        7
    """
    if not hasattr(rbm, "W"):
        raise ValueError(f"plot_filters needs an RBM, got {type(rbm).__name__}")
    W = np.asarray(rbm.W[...])
    if W.ndim != 2 or W.shape[0] != int(np.prod(image_shape)):
        raise ValueError(
            f"plot_filters needs an RBM with {int(np.prod(image_shape))} visible units "
            f"(images {tuple(image_shape)}), got weights of shape {W.shape}"
        )
    order = np.argsort(-np.linalg.norm(W, axis=0))
    if n is not None:
        order = order[: int(n)]
    count = len(order)
    ncols = int(np.ceil(np.sqrt(count)))
    nrows = int(np.ceil(count / ncols))
    bound = float(np.abs(W).max()) or 1.0
    plt = _pyplot()
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.0 * ncols + 0.8, 1.0 * nrows + 0.3))
    axes = np.atleast_1d(axes).ravel()
    image = None
    for k, ax in enumerate(axes):
        if k < count:
            filt = W[:, order[k]].reshape(image_shape)
            image = ax.imshow(filt, cmap="RdBu_r", vmin=-bound, vmax=bound)
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            fig.delaxes(ax)
    fig.suptitle(f"RBM filters W[:, j] ({W.shape[1]} hidden units)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.84, 0.95))
    cax = fig.add_axes((0.86, 0.15, 0.025, 0.7))
    fig.colorbar(image, cax=cax)  # pyright: ignore[reportArgumentType]
    if path is not None:
        _save(fig, path, dpi=100)
    return fig


def plot_training_curves(
    history, path: str | os.PathLike | None = None, *, title: str | None = None
):
    """Training curves from a `Trainer` history: loss, log-likelihoods, other metrics.

    Args:
        history: the dict `Trainer.fit` returns (name -> list per epoch or per
            evaluation), or a zoo model's `info(name)["training"]["history"]`.
        path: optional file to save the figure to.
        title: optional figure title.

    Returns:
        The matplotlib Figure (one panel per kind of metric).

    Example:
        >>> import hamon_nnx as hn
        >>> fig = hn.plots.plot_training_curves({"loss": [1.0, 0.5, 0.2]})
        >>> len(fig.axes)
        1
    """
    if not isinstance(history, dict) or not history:
        raise ValueError("history must be a non-empty dict of metric name -> values")
    groups: dict[str, list[str]] = {}
    eval_epochs = history.get("eval_epoch")
    for name in history:
        if name in ("eval_epoch", "compile_seconds") or name.endswith(("_stderr", "_ess")):
            continue
        if name == "loss":
            kind = "loss"
        elif name.endswith("pseudo_log_likelihood"):
            kind = "pseudo-log-likelihood (nats)"
        elif name.endswith("log_likelihood"):
            kind = "log-likelihood (nats)"
        elif name.endswith("reconstruction_error"):
            kind = "reconstruction error"
        else:
            kind = name
        groups.setdefault(kind, []).append(name)
    plt = _pyplot()
    fig, axes = plt.subplots(len(groups), 1, figsize=(6.4, 2.4 * len(groups)), sharex=True)
    axes = np.atleast_1d(axes)
    n_epochs = len(history.get("loss", next(iter(history.values()))))
    for ax, (kind, names) in zip(axes, groups.items(), strict=True):
        for name in names:
            values = np.asarray(history[name], np.float64)
            if eval_epochs is not None and len(eval_epochs) == len(values) and name != "loss":
                epochs = np.asarray(eval_epochs, np.float64)  # logged with each evaluation
            else:  # older histories: metrics every k epochs, spread over the epochs they cover
                step = max(n_epochs // max(len(values), 1), 1)
                epochs = step * np.arange(1, len(values) + 1)
            ax.plot(epochs, values, marker="o" if len(values) < 30 else None, markersize=3,
                    label=name.replace("_", " "))  # fmt: skip
        ax.set_ylabel(kind)
        if len(names) > 1 or kind != "loss":
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("epoch")
    if title:
        axes[0].set_title(title, fontsize=10)
    fig.tight_layout()
    if path is not None:
        _save(fig, path, dpi=110)
    return fig


def plot_thermodynamics(
    scan,
    path: str | os.PathLike | None = None,
    *,
    critical_beta: float | None = None,
    exact_energy=None,
    title: str | None = None,
):
    """Energy and |magnetization| per variable against beta, with error bars.

    Args:
        scan: an `hn.zoo.BetaScan` (from `hn.zoo.beta_scan`), or any object
            with betas, energy, energy_stderr, magnetization, magnetization_stderr.
        path: optional file to save the figure to.
        critical_beta: draw the critical point as a vertical line.
        exact_energy: optional callable beta -> exact energy per variable
            (e.g. `lambda b: hn.exact.ising_lattice_energy(L, b)`), drawn as a line.
        title: optional title.

    Returns:
        The matplotlib Figure (two panels).

    Example:
        >>> import numpy as np, hamon_nnx as hn
        >>> b = np.array([0.2, 0.4])
        >>> scan = hn.zoo.BetaScan(b, -b, 0 * b, b, 0 * b)
        >>> len(hn.plots.plot_thermodynamics(scan, critical_beta=0.44).axes)
        2
    """
    betas = np.asarray(scan.betas, np.float64)
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 5.6), sharex=True)
    top.errorbar(betas, scan.energy, yerr=scan.energy_stderr, fmt="o", markersize=4,
                 capsize=2, label="Gibbs sampling")  # fmt: skip
    if exact_energy is not None:
        grid = np.linspace(betas.min(), betas.max(), 200)
        top.plot(grid, [exact_energy(b) for b in grid], color="0.3", linewidth=1, label="exact")
    top.set_ylabel("energy per variable")
    top.legend(fontsize=8)
    bottom.errorbar(betas, scan.magnetization, yerr=scan.magnetization_stderr, fmt="o",
                    markersize=4, capsize=2, color="C1")  # fmt: skip
    bottom.set_ylabel("|magnetization| per variable")
    bottom.set_xlabel(r"inverse temperature $\beta$")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        if critical_beta is not None:
            ax.axvline(critical_beta, color="C3", linestyle="--", linewidth=1)
    if critical_beta is not None:
        bottom.text(
            critical_beta, 0.02, r" $\beta_c$", color="C3", transform=bottom.get_xaxis_transform()
        )
    if title:
        top.set_title(title, fontsize=10)
    fig.tight_layout()
    if path is not None:
        _save(fig, path, dpi=110)
    return fig
