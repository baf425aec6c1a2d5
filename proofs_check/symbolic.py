"""Symbolic (sympy) proofs of the gradient identities for n = 2 and n = 3, fully symbolic.

Symbols: logits ``theta_i``; ``l_i = log mu_i`` (free: both sides are invariant to a constant shift
of ``log mu``, so ``mu`` need not be normalised); a skew parametrisation ``P[i, j] = 1/2 + a_ij``,
``a_ji = -a_ij``; ``tau > 0``; for the IPO-MD identity a free sampling distribution ``q`` with
``sum q = 1`` (``q = mix_beta(pi)`` for any beta is a special case). The loss is the project's own
:func:`tabular.losses.ipo_loss`, called on sympy expressions (it is plain arithmetic); the gradient is
``sympy.diff``, with ``q`` held fixed (the stop-gradient). The difference with the closed form is
rewritten with ``E_i = exp(theta_i)``, ``L = log sum_j E_j`` and put over a common denominator;
the identity holds iff the expanded numerator is 0.
"""

from __future__ import annotations

import itertools

import sympy as sp

from tabular.losses import ipo_loss

__all__ = ["prop_4_2_symbolic", "ipo_md_centred_symbolic"]


def _setup(n: int):
    theta = sp.symbols(f"theta0:{n}", real=True)
    ell = sp.symbols(f"l0:{n}", real=True)
    tau = sp.symbols("tau", positive=True)
    a = {}
    for i, j in itertools.combinations(range(n), 2):
        a[i, j] = sp.Symbol(f"a{i}{j}", real=True)
        a[j, i] = -a[i, j]
    P = [[sp.Rational(1, 2) + a[i, j] if i != j else sp.Rational(1, 2) for j in range(n)]
         for i in range(n)]
    S = sum(sp.exp(t) for t in theta)
    log_pi = [t - sp.log(S) for t in theta]
    return theta, ell, tau, P, log_pi


def _population_ipo_gradient(theta, ell, tau, P, log_pi, q, loss=ipo_loss):
    n = len(theta)
    r = [log_pi[i] - ell[i] for i in range(n)]
    L = sum(q[y] * q[z] * loss(r[y] - r[z], P[y][z], tau) for y in range(n) for z in range(n))
    return [sp.diff(L, t) for t in theta]


def _is_zero(expr, theta) -> bool:
    E = sp.symbols(f"E0:{len(theta)}", positive=True)
    Lsym = sp.Symbol("L", real=True)
    expr = expr.xreplace({sp.exp(t): e for t, e in zip(theta, E)})
    expr = expr.xreplace({sp.log(sum(E)): Lsym})
    expr = sp.nsimplify(expr, rational=True)  # ipo_loss writes 0.5 / tau: an exact binary float
    num, _ = sp.fraction(sp.together(expr))
    return sp.expand(num) == 0


def prop_4_2_symbolic(n: int, factor=4, loss=ipo_loss) -> tuple[bool, int]:
    """``grad L_online-IPO = -(factor/tau) grad self-play`` symbolically; returns (holds, components)."""
    theta, ell, tau, P, log_pi = _setup(n)
    pi = [sp.exp(lp) for lp in log_pi]
    qs = sp.symbols(f"q0:{n}", positive=True)  # the stop-gradient: differentiate with q fixed ...
    grad = _population_ipo_gradient(theta, ell, tau, P, log_pi, qs, loss)
    grad = [g.xreplace(dict(zip(qs, pi))) for g in grad]  # ... then set q = pi
    adv = [sum(P[y][j] * pi[j] for j in range(n)) - sp.Rational(1, 2) - tau * (log_pi[y] - ell[y])
           for y in range(n)]
    self_play = [sum(pi[y] * ((1 if y == k else 0) - pi[k]) * adv[y] for y in range(n))
                 for k in range(n)]
    ok = all(_is_zero(g + sp.Rational(factor) / tau * s, theta) for g, s in zip(grad, self_play))
    return ok, n


def ipo_md_centred_symbolic(n: int, loss=ipo_loss) -> tuple[bool, int]:
    """For any detached sampling ``q`` (sum 1): ``grad L = -(4/tau) E_{y~q}[s_pi(y)(P(y>q) - 1/2
    - tau (r(y) - E_q r))]``, ``s_pi(y) = e_y - pi``; returns (holds, components)."""
    theta, ell, tau, P, log_pi = _setup(n)
    qs = sp.symbols(f"q0:{n - 1}", positive=True)
    q = list(qs) + [1 - sum(qs)]
    pi = [sp.exp(lp) for lp in log_pi]
    grad = _population_ipo_gradient(theta, ell, tau, P, log_pi, q, loss)
    r = [log_pi[i] - ell[i] for i in range(n)]
    mean_r = sum(q[i] * r[i] for i in range(n))
    adv = [sum(P[y][j] * q[j] for j in range(n)) - sp.Rational(1, 2) - tau * (r[y] - mean_r)
           for y in range(n)]
    closed = [-4 / tau * sum(q[y] * ((1 if y == k else 0) - pi[k]) * adv[y] for y in range(n))
              for k in range(n)]
    ok = all(_is_zero(g - c, theta) for g, c in zip(grad, closed))
    return ok, n
