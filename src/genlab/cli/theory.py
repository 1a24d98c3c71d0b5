"""genlab theory [--data gaussian|mixture] [--seed N] [--out DIR]: the 2014 GAN theory, measured on 1-D data.

Trains a small 1-D GAN, draws the paper's Figure 1 from it, freezes G and trains D to
convergence, then checks Proposition 1 (D -> D*) and Theorem 1 (V(D*, G) = -log 4 + 2 JSD).
Writes a PNG and a JSON with every number; exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from genlab.experiments.theory import TheoryConfig, TheoryResult, run_theory
from genlab.experiments.theory_figure import draw_theory_figure


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "theory", help="check the 2014 GAN theory on 1-D data (figure + numbers)", description=__doc__
    )
    p.add_argument("--data", choices=("gaussian", "mixture"), default="gaussian", help="1-D data distribution")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--loss",
        choices=("nonsaturating", "minimax"),
        default="nonsaturating",
        help="G's loss: -log D(G(z)) or the saturating log(1 - D(G(z)))",
    )
    p.add_argument("--out", default="runs/theory", help="folder for theory-DATA-seedN.png and .json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)  # networks of a few thousand weights: more threads only add overhead
    cfg = TheoryConfig(data=args.data, seed=args.seed, g_loss=args.loss)
    start = time.perf_counter()
    result = run_theory(cfg)
    elapsed = time.perf_counter() - start
    stem = Path(args.out) / f"theory-{args.data}-seed{args.seed}"
    png = draw_theory_figure(result, stem.with_suffix(".png"))
    stem.with_suffix(".json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    print(format_report(result, elapsed))
    print(f"wrote {png} and {stem.with_suffix('.json')}")
    return 0 if all(ok for _, _, ok in result.checks().values()) else 1


def format_report(result: TheoryResult, elapsed: float) -> str:
    """The checks against their targets, the numbers behind them, and V -> -log 4."""
    n, cfg = result.numbers, result.config
    checks = result.checks()
    rows = [
        f"genlab theory: {cfg.data} data, seed {cfg.seed}, G loss {cfg.g_loss}, "
        f"{cfg.gan_steps} G updates, D then trained {cfg.d_steps} steps against frozen G ({elapsed:.1f} s)",
        "",
        f"{'check':<52}{'measured':>10}{'target':>10}",
    ]
    labels = {
        "max_abs_d_error": f"max |D(x) - D*(x)| over {cfg.bulk_mass:.0%} of (p_data + p_g)/2",
        "value_gap": "|V(D, G) - (-log 4 + 2 JSD(p_data || p_g))|  [nats]",
    }
    for key, (value, bound, ok) in checks.items():
        rows.append(f"{labels[key]:<52}{value:>10.4f}{'< ' + format(bound, 'g'):>10}  {'pass' if ok else 'FAIL'}")
    details = [
        (f"V(D, G) by Monte Carlo, {cfg.mc_samples} samples each", n["value_monte_carlo"]),
        ("V(D, G) by integration", n["value_integral"]),
        ("-log 4 + 2 JSD(p_data || p_g), by integration", n["theorem_value"]),
        ("JSD(p_data || p_g), exact p_g", n["jsd"]),
        ("JSD(p_data || p_g), p_g a KDE of G's samples", n["jsd_kde"]),
        ("-log 4", n["minus_log_4"]),
    ]
    rows += [""] + [f"  {label:<50}{value:>10.4f}" for label, value in details]
    rows += [
        "",
        "V -> -log 4 as p_g -> p_data, fixed generators G_t(x) = m + (2 - t)(x - m) + (1 - t) std:",
        f"  {'t':>5}{'JSD':>10}{'-log4+2JSD':>13}{'V(D*,G_t) MC':>15}",
    ]
    rows += [
        f"  {r['t']:>5.2f}{r['jsd']:>10.4f}{r['theorem_value']:>13.4f}{r['value_monte_carlo']:>15.4f}"
        for r in result.approach
    ]
    first, last = result.trajectory[0], result.trajectory[-1]
    rows.append(
        f"and along training: -log 4 + 2 JSD went from {first['theorem_value']:.4f} (step 0) "
        f"to {last['theorem_value']:.4f} (step {last['step']})"
    )
    return "\n".join(rows)
