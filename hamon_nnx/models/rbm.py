"""Bernoulli restricted Boltzmann machine.

E(v, h) = -v^T W h - b^T v - c^T h with v, h in {0, 1}. The state vector in
natural (and internal) order is the visible units, then the hidden units:
two blocks, each one matrix product away from its conditional.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ..core import random
from .base import BINARY, Block, EnergyModel, check_finite


def _softplus_sum(z, p):
    """sum_j softplus(z_j) over the last axis, from p = sigmoid(z) with one log each.

    softplus(z) = max(z, 0) - log(sigmoid(|z|)), and sigmoid(|z|) is p or 1 - p,
    a number in [1/2, 1] (no cancellation): within 1e-6 of softplus absolutely,
    at a third of the cost of XLA's exp and log1p on the CPU.
    """
    return jnp.sum(jnp.maximum(z, 0.0) - jnp.log(jnp.where(z > 0, p, 1.0 - p)), axis=-1)


def _centered(gW, gb, gc, mu, lam):
    """The loss gradient in the centered coordinates of Melchior et al. (2016).

    With offsets mu (visible) and lam (hidden) the energy
    E = -(v - mu)^T W (h - lam) - b'^T (v - mu) - c'^T (h - lam) is the same
    model as E = -v^T W h - b^T v - c^T h with b = b' - W lam and
    c = c' - W^T mu. In the coordinates (W, b', c') the loss gradient is
    G_W' = G_W - G_b lam^T - mu G_c^T (moments of v - mu and h - lam), G_b,
    G_c. An optimizer steps in those coordinates; `_uncenter` maps the step
    back (b moves by its own step minus dW lam, c by its own minus dW^T mu).

    Args:
        gW, gb, gc: the plain loss gradient, (n, m), (n,), (m,).
        mu, lam: the visible and hidden offsets, (n,) and (m,).

    Returns:
        (G_W', G_b, G_c).
    """
    return gW - jnp.outer(gb, lam) - jnp.outer(mu, gc), gb, gc


def _uncenter(dW, mu, lam):
    """The bias shifts (-dW lam, -dW^T mu) that map a centered step back to (W, b, c)."""
    return -dW @ lam, -dW.T @ mu


class RBM(EnergyModel):
    """A Bernoulli-Bernoulli RBM with weights `W` (n_visible, n_hidden).

    Args:
        n_visible: number of visible units.
        n_hidden: number of hidden units.
        rngs: `nnx.Rngs` for the weight initialisation (keyword-only).
        init_scale: standard deviation of the Gaussian initial weights.

    Example:
        >>> import jax, hamon_nnx as hn
        >>> from flax import nnx
        >>> rbm = hn.RBM(n_visible=6, n_hidden=3, rngs=nnx.Rngs(0))
        >>> v = jax.numpy.zeros((2, 6), dtype="int8")
        >>> rbm.free_energy(v).shape
        (2,)
    """

    def __init__(self, n_visible: int, n_hidden: int, *, rngs: nnx.Rngs, init_scale: float = 0.01):
        for name, value in (("n_visible", n_visible), ("n_hidden", n_hidden)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not np.isfinite(init_scale) or init_scale < 0:
            raise ValueError(f"init_scale must be finite and >= 0, got {init_scale!r}")
        self.n_visible = int(n_visible)
        self.n_hidden = int(n_hidden)
        self.n_variables = self.n_visible + self.n_hidden
        self.blocks = (
            Block(0, self.n_visible, BINARY, 2),
            Block(self.n_visible, self.n_variables, BINARY, 2),
        )
        w = init_scale * jax.random.normal(rngs.params(), (self.n_visible, self.n_hidden))
        self.W = nnx.Param(w.astype(jnp.float32))
        self.visible_bias = nnx.Param(jnp.zeros((self.n_visible,), jnp.float32))
        self.hidden_bias = nnx.Param(jnp.zeros((self.n_hidden,), jnp.float32))

    def config(self) -> dict:
        """Numbers of visible and hidden units."""
        return {
            "class": type(self).registered_name(),
            "n_visible": self.n_visible,
            "n_hidden": self.n_hidden,
        }

    @classmethod
    def from_config(cls, config: dict) -> RBM:
        """Zero weights and biases of the configured sizes."""
        return cls(config["n_visible"], config["n_hidden"], rngs=nnx.Rngs(0), init_scale=0.0)

    @classmethod
    def from_params(cls, W, visible_bias=None, hidden_bias=None) -> RBM:
        """An RBM with the given weights (n_visible, n_hidden) and biases."""
        W = check_finite("W", W)
        if W.ndim != 2:
            raise ValueError(f"W must have shape (n_visible, n_hidden), got {W.shape}")
        nv, nh = W.shape
        model = cls(nv, nh, rngs=nnx.Rngs(0), init_scale=0.0)
        model.W[...] = jnp.asarray(W)
        for name, value, size in (
            ("visible_bias", visible_bias, nv),
            ("hidden_bias", hidden_bias, nh),
        ):
            if value is not None:
                arr = check_finite(name, value)
                if arr.shape != (size,):
                    raise ValueError(f"{name} must have shape ({size},), got {arr.shape}")
                getattr(model, name)[...] = jnp.asarray(arr)
        return model

    def init_visible_bias(self, data, pseudocount: float = 1.0) -> None:
        """Set b_i = log(p_i / (1 - p_i)) from the data's pixel frequencies.

        The usual starting point (Hinton's practical guide): with W small the
        model then starts at the data's independent-pixel fit.

        Example:
            >>> import numpy as np, hamon_nnx as hn
            >>> from flax import nnx
            >>> rbm = hn.RBM(3, 2, rngs=nnx.Rngs(0))
            >>> rbm.init_visible_bias(np.array([[1, 0, 1], [1, 0, 0]]))
            >>> bool(rbm.visible_bias[...][0] > 0 > rbm.visible_bias[...][1])
            True
        """
        v = np.asarray(data, np.float64)
        if v.ndim != 2 or v.shape[1] != self.n_visible:
            raise ValueError(f"data must have shape (n, {self.n_visible}), got {v.shape}")
        if not np.all((v == 0) | (v == 1)):
            raise ValueError("data must be binary (0/1)")
        p = (v.sum(axis=0) + pseudocount) / (len(v) + 2 * pseudocount)
        self.visible_bias[...] = jnp.asarray(np.log(p / (1 - p)), jnp.float32)

    def split(self, x):
        """(visible, hidden) parts of states (..., n_visible + n_hidden)."""
        return x[..., : self.n_visible], x[..., self.n_visible :]

    def energy(self, x):
        v, h = self.split(jnp.asarray(x).astype(jnp.float32))
        return (
            -jnp.sum((v @ self.W[...]) * h, axis=-1)
            - v @ self.visible_bias[...]
            - h @ self.hidden_bias[...]
        )

    def free_energy(self, v):
        """F(v) = -log sum_h exp(-E(v, h)) = -b.v - sum_j softplus(c_j + (v W)_j)."""
        v = jnp.asarray(v).astype(jnp.float32)
        if v.shape[-1] != self.n_visible:
            raise ValueError(f"v must have shape (..., {self.n_visible}), got {v.shape}")
        return -v @ self.visible_bias[...] - jnp.sum(
            jax.nn.softplus(v @ self.W[...] + self.hidden_bias[...]), axis=-1
        )

    def contrastive_gradient(self, data, negatives, *, centered: bool = False):
        """mean F(data) - mean F(negatives) and its gradient, in closed form.

        The moment-matching gradient of the contrastive loss (negatives carry
        no gradient): dW = <v p(h|v)^T>_model - <v p(h|v)^T>_data, db = <v>_model
        - <v>_data, dc = <p(h|v)>_model - <p(h|v)>_data; the same numbers as
        autodiff through `free_energy`, with fewer operations (the Trainer
        uses it when present). A subclass that changes the energy gets None
        and is differentiated automatically.

        `centered=True` gives the gradient in the centered coordinates of
        Melchior, Fischer and Wiskott (2016, "How to center deep Boltzmann
        machines", JMLR 17): the same model written as
        E = -(v - mu)^T W (h - lam) - b'^T (v - mu) - c'^T (h - lam), with
        offsets (mu, lam) = `centering_offsets(data)` (the batch's <v> and
        <p(h|v)>), has the loss gradient

            dW' = dW - db lam^T - mu dc^T,   db' = db,   dc' = dc

        in (W, b', c'). The optimizer steps in those coordinates and
        `uncenter` maps the step back to (W, b, c) (the Trainer does both
        with `Trainer(centered=True)`), so adam's per-parameter scaling acts
        on the centered parameters, as the paper's method requires. This is
        the stateless variant: the offsets are the current batch's means,
        not running averages. Centering leaves the fixed points and the loss
        unchanged and conditions the steps, most where the data means are
        far from 1/2 (784-pixel images with a dark background).

        Args:
            data: (B, n_visible) vectors.
            negatives: (M, n_visible) model samples.
            centered: return the gradient in the centered coordinates (above).

        Returns:
            (loss, grads) with grads shaped like `nnx.state(self, nnx.Param)`,
            or None for a subclass with its own energy or free energy.

        Example:
            >>> import jax.numpy as jnp, hamon_nnx as hn
            >>> from flax import nnx
            >>> rbm = hn.RBM(3, 2, rngs=nnx.Rngs(0))
            >>> x = jnp.ones((4, 3), jnp.int8)
            >>> loss, grads = rbm.contrastive_gradient(x, x)
            >>> float(loss), grads["W"][...].shape
            (0.0, (3, 2))
            >>> loss, grads = rbm.contrastive_gradient(x, 1 - x, centered=True)
            >>> grads["hidden_bias"][...].shape
            (2,)
        """
        cls = type(self)
        if cls.free_energy is not RBM.free_energy or cls.energy is not RBM.energy:
            return None
        W, b, c = self.W[...], self.visible_bias[...], self.hidden_bias[...]
        vd = jnp.asarray(data).astype(jnp.float32)
        vn = jax.lax.stop_gradient(jnp.asarray(negatives).astype(jnp.float32))
        zd, zn = vd @ W + c, vn @ W + c
        pd, pn = jax.nn.sigmoid(zd), jax.nn.sigmoid(zn)
        loss = jnp.mean(-vd @ b - _softplus_sum(zd, pd)) - jnp.mean(-vn @ b - _softplus_sum(zn, pn))
        mean_vd, mean_pd = jnp.mean(vd, axis=0), jnp.mean(pd, axis=0)
        gW = vn.T @ pn / vn.shape[0] - vd.T @ pd / vd.shape[0]
        gb = jnp.mean(vn, axis=0) - mean_vd
        gc = jnp.mean(pn, axis=0) - mean_pd
        if centered:
            gW, gb, gc = _centered(gW, gb, gc, mean_vd, mean_pd)
        grads = nnx.state(self, nnx.Param)
        nnx.replace_by_pure_dict(grads, {"W": gW, "visible_bias": gb, "hidden_bias": gc})
        return loss, grads

    def centering_offsets(self, data):
        """The offsets (mu, lam) of a centered step: the batch's <v> and <p(h | v)>."""
        v = jnp.asarray(data).astype(jnp.float32)
        return jnp.mean(v, axis=0), jnp.mean(
            jax.nn.sigmoid(v @ self.W[...] + self.hidden_bias[...]), axis=0
        )

    def uncenter(self, W_before, offsets) -> None:
        """Map an optimizer step taken in centered coordinates back to (W, b, c).

        Args:
            W_before: W before the step (the step moved it by W - W_before).
            offsets: the (mu, lam) the centered gradient used.
        """
        db, dc = _uncenter(self.W[...] - W_before, *offsets)
        self.visible_bias[...] = self.visible_bias[...] + db
        self.hidden_bias[...] = self.hidden_bias[...] + dc

    def marginal(self, keep: str | None = None) -> RBMMarginal:
        """One layer with the other summed out (a copy of the parameters):
        same Z, the collapsed model `hn.autotune` tempers; `keep` is "hidden",
        "visible" or None for the smaller layer (see `RBMMarginal`)."""
        if keep is None:
            keep = "hidden" if self.n_hidden <= self.n_visible else "visible"
        W, b, c = self.W[...], self.visible_bias[...], self.hidden_bias[...]
        return RBMMarginal(W, b, c, keep)

    def hidden_logits(self, v):
        """Logits of P(h_j = 1 | v), shape (..., n_hidden)."""
        return jnp.asarray(v).astype(jnp.float32) @ self.W[...] + self.hidden_bias[...]

    def visible_logits(self, h):
        """Logits of P(v_i = 1 | h), shape (..., n_visible)."""
        return jnp.asarray(h).astype(jnp.float32) @ self.W[...].T + self.visible_bias[...]

    def block_logits(self, x, b):
        v, h = self.split(x)
        return self.visible_logits(h) if b == 0 else self.hidden_logits(v)


class RBMMarginal(EnergyModel):
    """One layer of an RBM with the other layer summed out.

    Keeping the hidden layer h (`keep="hidden"`):
    E(h) = -c.h - sum_i softplus(b_i + (W h)_i), the RBM's free energy of h,
    so Z is the RBM's partition function and p(h) its hidden marginal
    (`keep="visible"` is the same with the layers' roles exchanged). A joint
    draw is a kept layer from this model plus the other layer from its
    exact conditional: `complete(key, x)`.

    Tempering this model instead of the joint (v, h) is the collapsed route
    that `hn.autotune` takes for RBMs: the summed-out layer leaves the
    tempered path, whose joint version crosses a sharp, first-order-like
    transition near beta = 1 on trained models (a trained 784 x 25
    Fashion-MNIST RBM: barrier 5.9 and no round trips in 4,000 rounds on the
    joint; barrier 0.08 and 0.47 round trips per round on its hidden layer).

    A sweep visits the kept units in order, keeping the other layer's
    fields a = b + W h up to date (one column of W per update): about two
    softplus per summed unit per kept unit.

    Example:
        >>> import numpy as np, hamon_nnx as hn
        >>> g = np.random.default_rng(0)
        >>> rbm = hn.RBM.from_params(g.normal(size=(6, 3)), g.normal(size=6), g.normal(size=3))
        >>> marginal = rbm.marginal()  # keeps the smaller layer: the 3 hidden units
        >>> marginal.n_variables
        3
        >>> bool(np.isclose(hn.exact.log_partition(marginal), hn.exact.log_partition(rbm)))
        True
    """

    def __init__(self, W, visible_bias, hidden_bias, keep: str = "hidden"):
        if keep not in ("hidden", "visible"):
            raise ValueError(f"keep must be 'hidden' or 'visible', got {keep!r}")
        W = jnp.asarray(W, jnp.float32)
        biases = jnp.asarray(visible_bias, jnp.float32), jnp.asarray(hidden_bias, jnp.float32)
        if keep == "visible":  # the same algebra with the layers exchanged
            W, biases = W.T, biases[::-1]
        self.keep = keep
        self.n_summed, self.n_variables = int(W.shape[0]), int(W.shape[1])
        self.W = nnx.Param(W)  # (summed, kept)
        self.summed_bias = nnx.Param(biases[0])
        self.kept_bias = nnx.Param(biases[1])
        self.blocks = tuple(Block(j, j + 1, BINARY, 2) for j in range(self.n_variables))

    def config(self) -> dict:
        """Numbers of visible and hidden units, and the layer kept."""
        n_visible, n_hidden = (
            (self.n_summed, self.n_variables)
            if self.keep == "hidden"
            else (self.n_variables, self.n_summed)
        )
        return {
            "class": type(self).registered_name(),
            "n_visible": n_visible,
            "n_hidden": n_hidden,
            "keep": self.keep,
        }

    @classmethod
    def from_config(cls, config: dict) -> RBMMarginal:
        """Zero weights and biases of the configured sizes."""
        nv, nh = int(config["n_visible"]), int(config["n_hidden"])
        return cls(jnp.zeros((nv, nh)), jnp.zeros(nv), jnp.zeros(nh), config.get("keep", "hidden"))

    def fields(self, x):
        """The summed layer's conditional logits given kept states x (..., kept)."""
        x = jnp.asarray(x).astype(jnp.float32)
        return jnp.tensordot(x, self.W[...], axes=([-1], [-1])) + self.summed_bias[...]

    def _log_normalizer(self, a):
        """log of the summed layer's sum over its states given fields a (..., summed)."""
        return jnp.sum(jax.nn.softplus(a), axis=-1)

    def _log_normalizer_change(self, a, w):
        """_log_normalizer(a + w) - _log_normalizer(a) of one chain, term by term."""
        return jnp.sum(jax.nn.softplus(a + w) - jax.nn.softplus(a))

    def _draw_summed(self, key, x):
        """The summed layer drawn from its exact conditional given kept states x."""
        p = jax.nn.sigmoid(self.fields(x)).reshape(-1, self.n_summed)
        return random.bernoulli(key, p).astype(jnp.int8).reshape(*x.shape[:-1], self.n_summed)

    def energy(self, x):
        kept = jnp.asarray(x).astype(jnp.float32) @ self.kept_bias[...]
        return -kept - self._log_normalizer(self.fields(x))

    def complete(self, key: jax.Array, x: jax.Array) -> jax.Array:
        """Joint RBM states (..., n_visible + n_hidden), natural order: the
        kept layer x with the summed layer drawn from its exact conditional."""
        x = jnp.asarray(x, jnp.int8)
        other = self._draw_summed(key, x)
        return jnp.concatenate([other, x] if self.keep == "hidden" else [x, other], axis=-1)

    def _logit(self, a_without, w, c):
        """log p(x_j = 1) / p(x_j = 0) given the fields a without unit j."""
        return c + self._log_normalizer_change(a_without, w)

    def block_logits(self, x, b):
        w = self.W[...][..., b]
        a = self.fields(x) - w * x[b].astype(jnp.float32)
        return self._logit(a, w, self.kept_bias[...][b])[None]

    def gibbs_sweep(self, u, x, beta, keep, reference=None):
        columns = jnp.moveaxis(self.W[...], -1, 0)  # (kept, summed...): unit j's contiguous
        c = self.kept_bias[...]

        def unit(j, carry):
            x, a = carry
            w = columns[j]
            without = a - w * x[j].astype(jnp.float32)
            z = beta * self._logit(without, w, c[j])
            if reference is not None:
                z = z + (1.0 - beta) * reference[j]
            new = (u[j] < jax.nn.sigmoid(z)).astype(jnp.int8)
            if keep is not None:
                new = jnp.where(keep[j], x[j], new)
            return x.at[j].set(new), without + w * new.astype(jnp.float32)

        x, _ = jax.lax.fori_loop(0, self.n_variables, unit, (x, self.fields(x)))
        return x
