"""The `hamon-nnx` command line."""

from __future__ import annotations

import argparse
import json
import sys
import time


def _demo(args: argparse.Namespace) -> int:
    """Sample a periodic 2-D Ising lattice at several temperatures and check it.

    Compares the mean energy per spin with the exact finite-lattice value
    (Kaufman 1949) within its Monte-Carlo standard error.
    """
    import jax
    import numpy as np

    import hamon_nnx as hn

    L = args.size
    model = hn.IsingModel.lattice((L, L), coupling=1.0, periodic=True)
    rows = []
    for i, beta in enumerate(args.betas):
        start = time.perf_counter()
        s = hn.sample(
            model,
            jax.random.key(args.seed + i),
            n_samples=args.samples,
            n_chains=args.chains,
            n_warmup=args.warmup,
            beta=beta,
        )
        per_chain = np.asarray(model.energy(s)).mean(axis=1) / L**2
        seconds = time.perf_counter() - start
        estimate = float(per_chain.mean())
        stderr = float(per_chain.std(ddof=1) / np.sqrt(len(per_chain)))
        exact = hn.exact.ising_lattice_energy(L, beta)
        rows.append(
            {
                "beta": beta,
                "energy_per_spin": round(estimate, 5),
                "stderr": round(stderr, 5),
                "exact": round(exact, 5),
                "z": round((estimate - exact) / stderr, 2) if stderr > 0 else None,
                "seconds": round(seconds, 2),
            }
        )
        print(
            f"beta={beta:<6} energy/spin {estimate:+.5f} +- {stderr:.5f}   exact {exact:+.5f}"
            f"   ({seconds:.1f} s)",
            file=sys.stderr,
        )
    print(json.dumps({"model": f"Ising {L}x{L} periodic, J=1", "results": rows}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hamon-nnx", description="Discrete energy-based models in Flax NNX."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="sample a 2-D Ising lattice and check it against the exact answer",
        description=_demo.__doc__,
    )
    demo.add_argument("--size", type=int, default=32, help="lattice side L (default 32)")
    demo.add_argument(
        "--betas",
        type=float,
        nargs="+",
        default=[0.3, 0.4, 0.44068679],
        help="inverse temperatures",
    )
    demo.add_argument("--chains", type=int, default=64)
    demo.add_argument("--samples", type=int, default=400)
    demo.add_argument("--warmup", type=int, default=1000)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError) as err:
        print(f"hamon-nnx {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
