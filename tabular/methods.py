"""The one method table: where each method draws its pair and which shared loss it feeds (SPEC §4).

Both the tabular sandbox (:mod:`tabular.algorithms`) and the transformer code (:mod:`llm`) read
this table; neither keeps its own list of methods or re-derives a method's properties.

| method        | kind     | loss | y ~ | y' ~ | display       | default SGD lr     | llm tau |
|---------------|----------|------|-----|------|---------------|--------------------|---------|
| offline_ipo   | pairwise | ipo  | mu  | mu   | offline IPO   | ipo_lr             | 0.05    |
| offline_dpo   | pairwise | dpo  | mu  | mu   | offline DPO   | dpo_lr             | 0.5     |
| offline_slic  | pairwise | slic | mu  | mu   | offline SLiC  | slic_lr            | 0.5     |
| online_ipo    | pairwise | ipo  | pi  | pi   | online IPO    | ipo_lr             | 0.05    |
| online_dpo    | pairwise | dpo  | pi  | pi   | online DPO    | dpo_lr             | 0.5     |
| online_slic   | pairwise | slic | pi  | pi   | online SLiC   | slic_lr            | 0.5     |
| ipo_md        | pairwise | ipo  | mix | mix  | IPO-MD        | ipo_lr             | 0.05    |
| nash_md_pg    | pg       |      | pi  | mix  | Nash-MD-PG    | policy_gradient_lr | 0.02    |
| self_play     | pg       |      | pi  | pi   | self-play     | policy_gradient_lr | 0.02    |
| rl            | rl       |      | pi  |      | RL            | policy_gradient_lr | 0.05    |
| nash_md       | md       |      |     |      | Nash-MD       |                    |         |
| extragradient | md       |      |     |      | extragradient |                    |         |

Updates: a ``pairwise`` method follows the gradient of its loss on the margin ``h_pi(y, y')``
(IPO-MD: margins under pi, the pair from the geometric mixture); ``pg``: REINFORCE on
``P(y, y') - 1/2 - tau r_pi(y)`` (self_play is nash_md_pg with beta = 0); ``rl``: REINFORCE on
a Bradley-Terry reward ``s(y) - tau r_pi(y)``; ``md``: closed-form mirror descent and
extragradient (tabular only). The default SGD learning rate at tau is the row's ``sgd_lr``
(:func:`ipo_lr`, :func:`dpo_lr`, :func:`slic_lr`, :func:`policy_gradient_lr`); ``llm tau`` is the
transformer pipeline's default tau (``llm_tau``).

``mix`` is the geometric mixture ``pi^(1-beta) mu^beta`` (normalised), so ``pi`` means beta = 0
and ``mu`` means beta = 1. ``rl`` draws a single response and scores it, so it has no ``y'``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Method", "METHODS", "KINDS", "SAMPLERS", "sampled_methods", "method_table", "ipo_lr", "dpo_lr",
           "slic_lr", "policy_gradient_lr"]


# Default SGD learning rates at tau, one per loss (a row names its own). Each is written without
# tau**2 in a denominator and with tau * tau (inf, not OverflowError, for huge tau): every tau that
# validate_tau accepts, 1e-300 to 1e300, gives a finite lr.
def ipo_lr(tau: float) -> float:
    """``min(0.5, 20 tau^2)``. SGD on the exact online-IPO loss: linearised at pi*, the update is
    theta -= lr J dtheta with J = 4 D - (4 / tau) D A D (D = diag(pi) - pi pi^T, A = P - 1/2 skew).
    Its symmetric part is O(1) whatever tau, its rotation grows like 1/tau on intransitive
    games, and plain gradient steps are stable only for lr < 2 Re(l) / |l|^2 over J's eigenvalues
    l, i.e. lr = O(tau^2) for small tau. min(0.5, 20 tau^2) converged on BT, cyclic, random and
    majority games with non-uniform mu for tau in [0.01, 10]; lr 0.5 at tau = 0.1 and lr 2 tau at
    tau = 0.05 oscillate on cyclic(5). Convergence is then slow at small tau: that is the method
    (extragradient is the fast alternative), not the step size."""
    return min(0.5, 20.0 * tau * tau)


def dpo_lr(tau: float) -> float:
    """IPO's lr / (2 tau^2): measured, not derived (DPO's gradient in h scales like tau and the
    rotation like 1/tau); 4x this default oscillates on a BT-cyclic blend at tau = 0.1."""
    return min(0.25 / tau / tau, 10.0)


def slic_lr(tau: float) -> float:
    """IPO's lr / (2 tau): measured like :func:`dpo_lr`; 16x it oscillates on a BT-cyclic blend
    at tau = 0.1."""
    return min(0.25 / tau, 10.0 * tau)


def policy_gradient_lr(tau: float) -> float:
    """IPO's lr x 4 / tau: the policy-gradient objectives are tau/4 times IPO's (Prop. 4.2: grad
    IPO = -(4/tau) grad self-play), so self_play follows online_ipo step for step."""
    return min(2.0 / tau, 80.0 * tau)

KINDS = ("pairwise", "pg", "rl", "md")
SAMPLERS = ("pi", "mu", "mix")


@dataclass(frozen=True)
class Method:
    """How one method draws its responses and which loss it uses."""

    kind: str
    """``pairwise`` (IPO/DPO/SLiC on a pair), ``pg`` (preference policy gradient), ``rl`` (reward
    policy gradient) or ``md`` (closed-form mirror-descent update, no samples)."""
    loss: str | None = None
    """``ipo`` | ``dpo`` | ``slic`` for pairwise methods, else None."""
    beta_y: str | None = None
    """Where ``y`` is drawn: ``pi``, ``mu`` or ``mix`` (None: no samples)."""
    beta_y_prime: str | None = None
    """Where ``y'`` is drawn (None: no second response)."""
    display: str = ""
    """How tables and figures name the method (``online IPO``); empty: its key."""
    sgd_lr: Callable[[float], float] | None = None
    """The default SGD learning rate at tau (gradient methods; ``AlgorithmConfig.effective_lr``)."""
    llm_tau: float | None = None
    """The transformer pipeline's default tau (``python -m llm pipeline --taus``), chosen on its
    synthetic task; None: no default (the pipeline then needs ``--taus METHOD=TAU``)."""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown method kind {self.kind!r}; choose from {', '.join(KINDS)}")
        if (self.kind == "pairwise") != (self.loss is not None):
            raise ValueError(f"a {self.kind} method "
                             f"{'needs' if self.kind == 'pairwise' else 'takes no'} loss")
        for where in (self.beta_y, self.beta_y_prime):
            if where is not None and where not in SAMPLERS:
                raise ValueError(f"unknown sampler {where!r}; choose from {', '.join(SAMPLERS)}")
        if (self.kind != "md") != (self.sgd_lr is not None):
            raise ValueError(f"a {self.kind} method {'needs' if self.kind != 'md' else 'takes no'} "
                             f"default learning rate (sgd_lr)")
        if self.llm_tau is not None and (self.kind == "md" or not self.llm_tau > 0):
            raise ValueError(f"llm_tau is a tau > 0 of a method that learns from samples, got "
                             f"{self.llm_tau!r} for a {self.kind} method")

    @property
    def uses_beta(self) -> bool:
        """True when the method's ``beta`` hyperparameter changes what it does."""
        return "mix" in (self.beta_y, self.beta_y_prime)

    @property
    def learns_from_samples(self) -> bool:
        """True for the gradient methods, which learn from drawn responses (every kind but ``md``).
        Not to be confused with ``AlgorithmConfig.sampled``, the choice of a run's sampled form
        over its exact (population) form."""
        return self.kind != "md"

    def betas(self, beta: float) -> tuple[float, float]:
        """Mixture coefficients ``(beta_y, beta_y')`` for the method's hyperparameter ``beta``.

        ``pi`` -> 0, ``mu`` -> 1, ``mix`` -> ``beta``; a missing response gets 0.
        """
        value = {"pi": 0.0, "mu": 1.0, "mix": beta, None: 0.0}
        return value[self.beta_y], value[self.beta_y_prime]


METHODS: dict[str, Method] = {
    "offline_ipo": Method("pairwise", "ipo", "mu", "mu", "offline IPO", ipo_lr, 0.05),
    "offline_dpo": Method("pairwise", "dpo", "mu", "mu", "offline DPO", dpo_lr, 0.5),
    "offline_slic": Method("pairwise", "slic", "mu", "mu", "offline SLiC", slic_lr, 0.5),
    "online_ipo": Method("pairwise", "ipo", "pi", "pi", "online IPO", ipo_lr, 0.05),
    "online_dpo": Method("pairwise", "dpo", "pi", "pi", "online DPO", dpo_lr, 0.5),
    "online_slic": Method("pairwise", "slic", "pi", "pi", "online SLiC", slic_lr, 0.5),
    "ipo_md": Method("pairwise", "ipo", "mix", "mix", "IPO-MD", ipo_lr, 0.05),
    "nash_md_pg": Method("pg", None, "pi", "mix", "Nash-MD-PG", policy_gradient_lr, 0.02),
    "self_play": Method("pg", None, "pi", "pi", "self-play", policy_gradient_lr, 0.02),
    "rl": Method("rl", None, "pi", None, "RL", policy_gradient_lr, 0.05),
    "nash_md": Method("md", display="Nash-MD"),
    "extragradient": Method("md", display="extragradient"),
}


def method_table() -> str:
    """The table in this module's docstring, rendered from :data:`METHODS` (a test keeps the two
    equal: a new row shows up in the documentation or the test fails)."""
    rows = [("method", "kind", "loss", "y ~", "y' ~", "display", "default SGD lr", "llm tau")]
    rows += [(name, m.kind, m.loss or "", m.beta_y or "", m.beta_y_prime or "", m.display,
              m.sgd_lr.__name__ if m.sgd_lr else "", "" if m.llm_tau is None else f"{m.llm_tau:g}")
             for name, m in METHODS.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def sampled_methods() -> dict[str, Method]:
    """The methods that learn from drawn responses (all but the closed-form ``md`` updates): the
    ones a transformer can run."""
    return {name: m for name, m in METHODS.items() if m.learns_from_samples}
