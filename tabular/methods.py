"""The one method table: where each method draws its pair and which shared loss it feeds (SPEC §4).

Both the tabular sandbox (:mod:`tabular.algorithms`) and the transformer code (:mod:`llm`) read
this table; neither keeps its own list of methods or re-derives a method's properties.

| method        | kind     | loss | y ~ | y' ~ | update                                                     |
|---------------|----------|------|-----|------|------------------------------------------------------------|
| offline_ipo   | pairwise | ipo  | mu  | mu   | gradient of the pairwise loss on ``h_pi(y, y')``           |
| offline_dpo   | pairwise | dpo  | mu  | mu   |                                                            |
| offline_slic  | pairwise | slic | mu  | mu   |                                                            |
| online_ipo    | pairwise | ipo  | pi  | pi   |                                                            |
| online_dpo    | pairwise | dpo  | pi  | pi   |                                                            |
| online_slic   | pairwise | slic | pi  | pi   |                                                            |
| ipo_md        | pairwise | ipo  | mix | mix  | margins under pi, pair from the geometric mixture          |
| nash_md_pg    | pg       |      | pi  | mix  | REINFORCE on ``P(y, y') - 1/2 - tau r_pi(y)``              |
| self_play     | pg       |      | pi  | pi   | nash_md_pg with beta = 0                                   |
| rl            | rl       |      | pi  |      | REINFORCE on a Bradley-Terry reward ``s(y) - tau r_pi(y)`` |
| nash_md       | md       |      |     |      | closed-form mirror descent (tabular only)                  |
| extragradient | md       |      |     |      | closed-form extragradient (tabular only)                   |

``mix`` is the geometric mixture ``pi^(1-beta) mu^beta`` (normalised), so ``pi`` means beta = 0
and ``mu`` means beta = 1. ``rl`` draws a single response and scores it, so it has no ``y'``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Method", "METHODS", "KINDS", "SAMPLERS", "sampled_methods"]

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

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown method kind {self.kind!r}; choose from {', '.join(KINDS)}")
        if (self.kind == "pairwise") != (self.loss is not None):
            raise ValueError(f"a {self.kind} method "
                             f"{'needs' if self.kind == 'pairwise' else 'takes no'} loss")
        for where in (self.beta_y, self.beta_y_prime):
            if where is not None and where not in SAMPLERS:
                raise ValueError(f"unknown sampler {where!r}; choose from {', '.join(SAMPLERS)}")

    @property
    def uses_beta(self) -> bool:
        """True when the method's ``beta`` hyperparameter changes what it does."""
        return "mix" in (self.beta_y, self.beta_y_prime)

    @property
    def sampled(self) -> bool:
        """True for methods that learn from drawn responses (every kind but ``md``)."""
        return self.kind != "md"

    def betas(self, beta: float) -> tuple[float, float]:
        """Mixture coefficients ``(beta_y, beta_y')`` for the method's hyperparameter ``beta``.

        ``pi`` -> 0, ``mu`` -> 1, ``mix`` -> ``beta``; a missing response gets 0.
        """
        value = {"pi": 0.0, "mu": 1.0, "mix": beta, None: 0.0}
        return value[self.beta_y], value[self.beta_y_prime]


METHODS: dict[str, Method] = {
    "offline_ipo": Method("pairwise", "ipo", "mu", "mu", "offline IPO"),
    "offline_dpo": Method("pairwise", "dpo", "mu", "mu", "offline DPO"),
    "offline_slic": Method("pairwise", "slic", "mu", "mu", "offline SLiC"),
    "online_ipo": Method("pairwise", "ipo", "pi", "pi", "online IPO"),
    "online_dpo": Method("pairwise", "dpo", "pi", "pi", "online DPO"),
    "online_slic": Method("pairwise", "slic", "pi", "pi", "online SLiC"),
    "ipo_md": Method("pairwise", "ipo", "mix", "mix", "IPO-MD"),
    "nash_md_pg": Method("pg", None, "pi", "mix", "Nash-MD-PG"),
    "self_play": Method("pg", None, "pi", "pi", "self-play"),
    "rl": Method("rl", None, "pi", None, "RL"),
    "nash_md": Method("md", display="Nash-MD"),
    "extragradient": Method("md", display="extragradient"),
}


def sampled_methods() -> dict[str, Method]:
    """The methods that learn from drawn responses (all but the closed-form ``md`` updates): the
    ones a transformer can run."""
    return {name: m for name, m in METHODS.items() if m.sampled}
