"""Categorical-Bernoulli restricted Boltzmann machine.

Visible units take q states 0..q-1 (one-hot internally), hidden units are
binary 0/1:

    E(v, h) = -sum_{i,a,j} 1[v_i = a] W[i, a, j] h_j - sum_i b[i, v_i] - c.h

the model of quantized images and of protein sequences (q = 21). The state
vector in natural (and internal) order is the n_visible categorical values,
then the n_hidden binary units: two blocks, each one matrix product away
from its conditional. Internally the one-hot visible vectors are flattened
to length n_visible * q, so every product is a plain matrix product (no
gathers, no scatters in the gradient).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ..core import random
from ..core.layout import check_states
from .base import BINARY, CATEGORICAL, KINDS, Block, EnergyModel, check_finite
from .rbm import RBMMarginal, _centered, _uncenter


def _check_size(name: str, value, low: int, high: int | None = None) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | np.integer | float | np.floating)
        or int(value) != value
        or value < low
        or (high is not None and value > high)
    ):
        bound = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"
        extra = " (int8 states)" if high is not None else ""
        raise ValueError(f"{name} must be {bound}{extra}, got {value!r}")
    return int(value)


def _softplus_sum(z, p):
    """sum_j softplus(z_j) over the last axis, from p = sigmoid(z) (see `rbm._softplus_sum`)."""
    return jnp.sum(jnp.maximum(z, 0.0) - jnp.log(jnp.where(z > 0, p, 1.0 - p)), axis=-1)


class CategoricalRBM(EnergyModel):
    """An RBM with q-state visible units and binary hidden units.

    E(v, h) = -sum_{i,a,j} onehot(v)_{ia} W[i, a, j] h_j - sum_{i,a} onehot(v)_{ia} b[i, a]
    - sum_j c_j h_j, with `W` (n_visible, q, n_hidden), `visible_bias` b
    (n_visible, q) and `hidden_bias` c (n_hidden,). States are int8 vectors
    (..., n_visible + n_hidden): the visible values 0..q-1, then the hidden
    units 0/1. Data vectors (training, `free_energy`) are the n_visible
    visible values.

    `hn.exact.log_partition` sums the smaller side: the 2**n_hidden hidden
    configurations (visible units summed analytically) or the q**n_visible
    visible ones (hidden units summed analytically).

    Args:
        n_visible: number of visible (categorical) units.
        n_hidden: number of hidden (binary) units.
        q: states per visible unit, 2..127.
        rngs: `nnx.Rngs` for the weight initialisation (keyword-only).
        init_scale: standard deviation of the Gaussian initial weights.

    Example:
        >>> import jax, numpy as np, hamon_nnx as hn
        >>> from flax import nnx
        >>> rbm = hn.CategoricalRBM(n_visible=5, n_hidden=3, q=4, rngs=nnx.Rngs(0))
        >>> rbm.n_variables, [blk.kind for blk in rbm.blocks]
        (8, ['categorical', 'binary'])
        >>> v = np.array([[0, 1, 2, 3, 0], [3, 3, 3, 3, 3]], dtype="int8")
        >>> rbm.free_energy(v).shape, rbm.visible_logits(np.zeros((2, 3))).shape
        ((2,), (2, 5, 4))
        >>> hn.sample(rbm, jax.random.key(0), n_samples=10, n_chains=2).shape
        (2, 10, 8)
        >>> bool(np.isclose(hn.exact.log_partition(rbm), 5 * np.log(4) + 3 * np.log(2), atol=0.05))
        True
    """

    def __init__(
        self, n_visible: int, n_hidden: int, q: int, *, rngs: nnx.Rngs, init_scale: float = 0.01
    ):
        self.n_visible = _check_size("n_visible", n_visible, 1)
        self.n_hidden = _check_size("n_hidden", n_hidden, 1)
        self.q = _check_size("q", q, 2, 127)
        if not np.isfinite(init_scale) or init_scale < 0:
            raise ValueError(f"init_scale must be finite and >= 0, got {init_scale!r}")
        self.n_variables = self.n_visible + self.n_hidden
        self.blocks = (
            Block(0, self.n_visible, CATEGORICAL, self.q),
            Block(self.n_visible, self.n_variables, BINARY, 2),
        )
        shape = (self.n_visible, self.q, self.n_hidden)
        w = init_scale * jax.random.normal(rngs.params(), shape)
        self.W = nnx.Param(w.astype(jnp.float32))
        self.visible_bias = nnx.Param(jnp.zeros((self.n_visible, self.q), jnp.float32))
        self.hidden_bias = nnx.Param(jnp.zeros((self.n_hidden,), jnp.float32))

    # -- construction ----------------------------------------------------------
    def config(self) -> dict:
        """Numbers of visible and hidden units and of visible states."""
        return {
            "class": type(self).registered_name(),
            "n_visible": self.n_visible,
            "n_hidden": self.n_hidden,
            "q": self.q,
        }

    @classmethod
    def from_config(cls, config: dict) -> CategoricalRBM:
        """Zero weights and biases of the configured sizes."""
        return cls(
            config["n_visible"], config["n_hidden"], config["q"], rngs=nnx.Rngs(0), init_scale=0.0
        )

    @classmethod
    def from_params(cls, W, b=None, c=None) -> CategoricalRBM:
        """A CategoricalRBM with weights W (n_visible, q, n_hidden) and biases.

        Args:
            W: weights, shape (n_visible, q, n_hidden), q >= 2.
            b: visible biases (n_visible, q), or None for zeros.
            c: hidden biases (n_hidden,), or None for zeros.

        Raises:
            ValueError: a wrong shape, q outside 2..127, or a NaN / inf value
                (named with its index).

        Example:
            >>> import numpy as np, hamon_nnx as hn
            >>> rbm = hn.CategoricalRBM.from_params(np.zeros((4, 3, 2)), b=np.ones((4, 3)))
            >>> rbm.n_visible, rbm.q, rbm.n_hidden
            (4, 3, 2)
        """
        W = check_finite("W", W)
        if W.ndim != 3:
            raise ValueError(f"W must have shape (n_visible, q, n_hidden), got {W.shape}")
        nv, q, nh = W.shape
        if nv < 1 or nh < 1:
            raise ValueError(f"W must have n_visible >= 1 and n_hidden >= 1, got shape {W.shape}")
        if not 2 <= q <= 127:
            raise ValueError(
                f"q (W.shape[1]) must be an integer in 2..127 (int8 states), got {q} "
                f"from W of shape {W.shape}"
            )
        model = cls(nv, nh, q, rngs=nnx.Rngs(0), init_scale=0.0)
        model.W[...] = jnp.asarray(W)
        for name, attr, value, shape in (
            ("b", "visible_bias", b, (nv, q)),
            ("c", "hidden_bias", c, (nh,)),
        ):
            if value is not None:
                arr = check_finite(name, value)
                if arr.shape != shape:
                    raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
                getattr(model, attr)[...] = jnp.asarray(arr)
        return model

    def init_visible_bias(self, data, pseudocount: float = 1.0) -> None:
        """Set b[i, a] = log p_i(a) from the data's per-site frequencies.

        With W small the model then starts at the data's independent-site fit
        (the categorical version of Hinton's starting point for RBMs).

        Example:
            >>> import numpy as np, hamon_nnx as hn
            >>> from flax import nnx
            >>> rbm = hn.CategoricalRBM(2, 2, q=3, rngs=nnx.Rngs(0))
            >>> rbm.init_visible_bias(np.array([[0, 2], [0, 1]]))
            >>> b = np.asarray(rbm.visible_bias[...])
            >>> bool(b[0, 0] > b[0, 1] == b[0, 2])
            True
        """
        arr = np.asarray(data)
        if arr.ndim != 2 or arr.shape[1] != self.n_visible:
            raise ValueError(f"data must have shape (n, {self.n_visible}), got {arr.shape}")
        if not np.isfinite(pseudocount) or pseudocount <= 0:
            raise ValueError(f"pseudocount must be finite and > 0, got {pseudocount!r}")
        kinds = np.full(self.n_visible, KINDS.index(CATEGORICAL), np.int8)
        v = check_states(arr, kinds, np.full(self.n_visible, self.q), "data").astype(np.int64)
        counts = (v[:, :, None] == np.arange(self.q)).sum(axis=0) + pseudocount
        p = counts / counts.sum(axis=1, keepdims=True)
        self.visible_bias[...] = jnp.asarray(np.log(p), jnp.float32)

    # -- energies ----------------------------------------------------------------
    def split(self, x):
        """(visible, hidden) parts of states (..., n_visible + n_hidden)."""
        return x[..., : self.n_visible], x[..., self.n_visible :]

    def onehot(self, v):
        """Flattened one-hot vectors (..., n_visible * q) float32 of visible values v.

        Values outside 0..q-1 give all-zero rows; validated data never holds them.
        """
        v = jnp.asarray(v)
        if v.shape[-1:] != (self.n_visible,):
            raise ValueError(f"v must have shape (..., {self.n_visible}), got {v.shape}")
        oh = jax.nn.one_hot(v.astype(jnp.int32), self.q, dtype=jnp.float32)
        return oh.reshape(*v.shape[:-1], self.n_visible * self.q)

    def _flat(self):
        """W as (n_visible * q, n_hidden) and b as (n_visible * q,)."""
        nq = self.n_visible * self.q
        return self.W[...].reshape(nq, self.n_hidden), self.visible_bias[...].reshape(nq)

    def energy(self, x):
        """E(v, h) of natural-order states x (..., n_visible + n_hidden)."""
        x = jnp.asarray(x)
        if x.shape[-1:] != (self.n_variables,):
            raise ValueError(f"x must have shape (..., {self.n_variables}), got {x.shape}")
        v, h = self.split(x)
        oh, h = self.onehot(v), h.astype(jnp.float32)
        W, b = self._flat()
        return -jnp.sum((oh @ W) * h, axis=-1) - oh @ b - h @ self.hidden_bias[...]

    def free_energy(self, v):
        """F(v) = -log sum_h exp(-E(v, h)) = -sum_i b[i, v_i] - sum_j softplus(c_j + sum_i W[i, v_i, j])."""
        oh = self.onehot(v)
        W, b = self._flat()
        return -oh @ b - jnp.sum(jax.nn.softplus(oh @ W + self.hidden_bias[...]), axis=-1)

    def hidden_logits(self, v):
        """Logits of P(h_j = 1 | v), shape (..., n_hidden)."""
        W, _ = self._flat()
        return self.onehot(v) @ W + self.hidden_bias[...]

    def visible_logits(self, h):
        """Logits of P(v_i = a | h) up to a constant per i, shape (..., n_visible, q).

        Accepts binary states or probabilities h (..., n_hidden).
        """
        h = jnp.asarray(h).astype(jnp.float32)
        if h.shape[-1:] != (self.n_hidden,):
            raise ValueError(f"h must have shape (..., {self.n_hidden}), got {h.shape}")
        W, b = self._flat()
        return (h @ W.T + b).reshape(*h.shape[:-1], self.n_visible, self.q)

    def block_logits(self, x, b):
        v, h = self.split(x)
        return self.visible_logits(h) if b == 0 else self.hidden_logits(v)

    def centering_offsets(self, data):
        """The offsets (mu, lam) of a centered step: the batch's <onehot(v)> and <p(h | v)>."""
        o = self.onehot(data)
        W, _ = self._flat()
        return jnp.mean(o, axis=0), jnp.mean(jax.nn.sigmoid(o @ W + self.hidden_bias[...]), axis=0)

    def uncenter(self, W_before, offsets) -> None:
        """Map an optimizer step taken in centered coordinates back (see `hn.RBM.uncenter`)."""
        nq = self.n_visible * self.q
        dW = (self.W[...] - W_before).reshape(nq, self.n_hidden)
        db, dc = _uncenter(dW, *offsets)
        self.visible_bias[...] = self.visible_bias[...] + db.reshape(self.n_visible, self.q)
        self.hidden_bias[...] = self.hidden_bias[...] + dc

    def marginal(self) -> CategoricalRBMMarginal:
        """The hidden layer with the visible one summed out (a copy of the
        parameters): same Z, the collapsed model `hn.autotune` and `hn.ais`
        temper (see `CategoricalRBMMarginal`)."""
        return CategoricalRBMMarginal(self.W[...], self.visible_bias[...], self.hidden_bias[...])

    # -- training ------------------------------------------------------------------
    def contrastive_gradient(self, data, negatives, *, centered: bool = False):
        """mean F(data) - mean F(negatives) and its gradient, in closed form.

        The moment-matching gradient (negatives carry no gradient), with
        o = onehot(v) and p = P(h = 1 | v): dW = <o p^T>_model - <o p^T>_data,
        db = <o>_model - <o>_data, dc = <p>_model - <p>_data; the numbers of
        autodiff through `free_energy` (the Trainer uses it when present).

        `centered=True` gives the gradient in the centered coordinates of
        Melchior, Fischer and Wiskott (2016) with the one-hot vectors o as the
        visible units: offsets mu = <o>_data (the batch's per-site state
        frequencies) and lam = <p>_data (`centering_offsets`), the algebra of
        `hn.RBM.contrastive_gradient`; `uncenter` maps a step back.

        Args:
            data: (B, n_visible) vectors.
            negatives: (M, n_visible) model samples.
            centered: return the gradient in the centered coordinates.

        Returns:
            (loss, grads) with grads shaped like `nnx.state(self, nnx.Param)`,
            or None for a subclass with its own energy or free energy.

        Example:
            >>> import jax.numpy as jnp, hamon_nnx as hn
            >>> from flax import nnx
            >>> rbm = hn.CategoricalRBM(3, 2, q=4, rngs=nnx.Rngs(0))
            >>> x = jnp.ones((5, 3), jnp.int8)
            >>> loss, grads = rbm.contrastive_gradient(x, x)
            >>> float(loss), grads["W"][...].shape
            (0.0, (3, 4, 2))
            >>> loss, grads = rbm.contrastive_gradient(x, 2 * x, centered=True)
            >>> grads["visible_bias"][...].shape
            (3, 4)
        """
        cls = type(self)
        if cls.free_energy is not CategoricalRBM.free_energy or cls.energy is not (
            CategoricalRBM.energy
        ):
            return None
        W, b = self._flat()
        c = self.hidden_bias[...]
        od = self.onehot(data)
        on = jax.lax.stop_gradient(self.onehot(negatives))
        zd, zn = od @ W + c, on @ W + c
        pd, pn = jax.nn.sigmoid(zd), jax.nn.sigmoid(zn)
        loss = jnp.mean(-od @ b - _softplus_sum(zd, pd)) - jnp.mean(-on @ b - _softplus_sum(zn, pn))
        nd, nn_ = od.shape[0], on.shape[0]
        mean_od, mean_pd = jnp.mean(od, axis=0), jnp.mean(pd, axis=0)
        gW = on.T @ pn / nn_ - od.T @ pd / nd
        gb = jnp.mean(on, axis=0) - mean_od
        gc = jnp.mean(pn, axis=0) - mean_pd
        if centered:
            gW, gb, gc = _centered(gW, gb, gc, mean_od, mean_pd)
        grads = nnx.state(self, nnx.Param)
        nnx.replace_by_pure_dict(
            grads,
            {
                "W": gW.reshape(self.W[...].shape),
                "visible_bias": gb.reshape(self.visible_bias[...].shape),
                "hidden_bias": gc,
            },
        )
        return loss, grads


class CategoricalRBMMarginal(RBMMarginal):
    """The hidden layer of a `CategoricalRBM` with the categorical visible layer summed out.

    E(h) = -c.h - sum_i logsumexp_a (b[i, a] + sum_j W[i, a, j] h_j), the
    CategoricalRBM's free energy of h: the same Z, and the collapsed model
    that `hn.autotune` and `hn.ais` temper (the joint (v, h) path of a
    trained model crosses a sharp transition that block Gibbs cannot
    follow). `complete(key, h)` draws v from its exact conditional; a sweep
    updates the hidden units in order, keeping the (n_visible, q) fields up
    to date (one W[:, :, j] per update).

    Example:
        >>> import numpy as np, hamon_nnx as hn
        >>> g = np.random.default_rng(0)
        >>> crbm = hn.CategoricalRBM.from_params(g.normal(size=(4, 3, 2)))
        >>> marginal = crbm.marginal()
        >>> marginal.n_variables, marginal.q
        (2, 3)
        >>> bool(np.isclose(hn.exact.log_partition(marginal), hn.exact.log_partition(crbm)))
        True
    """

    def __init__(self, W, visible_bias, hidden_bias):
        W = jnp.asarray(W, jnp.float32)
        if W.ndim != 3:
            raise ValueError(f"W must have shape (n_visible, q, n_hidden), got {W.shape}")
        self.keep = "hidden"
        self.n_summed, self.q, self.n_variables = (int(d) for d in W.shape)
        self.W = nnx.Param(W)  # (summed, q, kept)
        self.summed_bias = nnx.Param(jnp.asarray(visible_bias, jnp.float32))
        self.kept_bias = nnx.Param(jnp.asarray(hidden_bias, jnp.float32))
        self.blocks = tuple(Block(j, j + 1, BINARY, 2) for j in range(self.n_variables))

    def config(self) -> dict:
        """Numbers of visible units, visible states and hidden units."""
        return {
            "class": type(self).registered_name(),
            "n_visible": self.n_summed,
            "n_hidden": self.n_variables,
            "q": self.q,
        }

    @classmethod
    def from_config(cls, config: dict) -> CategoricalRBMMarginal:
        """Zero weights and biases of the configured sizes."""
        nv, q, nh = int(config["n_visible"]), int(config["q"]), int(config["n_hidden"])
        return cls(jnp.zeros((nv, q, nh)), jnp.zeros((nv, q)), jnp.zeros(nh))

    def _log_normalizer(self, a):
        return jnp.sum(jax.nn.logsumexp(a, axis=-1), axis=-1)

    def _log_normalizer_change(self, a, w):
        return jnp.sum(jax.nn.logsumexp(a + w, axis=-1) - jax.nn.logsumexp(a, axis=-1))

    def _draw_summed(self, key, x):
        logits = self.fields(x).reshape(-1, self.n_summed, self.q)
        return random.categorical(key, logits).reshape(*x.shape[:-1], self.n_summed)
