"""Problem instances for the ledger, drawn from hypothesis strategies, reproducibly.

Every check draws its instances with :func:`draw`, which runs a hypothesis ``@given`` test that
only collects what it is handed, under ``@hypothesis.seed(seed)``, ``database=None`` (no example
database is read or written) and ``phases=[Phase.generate]`` (no replay, no shrinking). Hypothesis
is then a deterministic function of ``(strategy, count, seed)``: the same command prints the same
ledger on every machine (checked by ``tests/proofs_check``). One more thing is switched off:
recent Hypothesis versions mix "local constants" harvested from the source of every imported
non-library module into the draws, so the examples would depend on which modules happen to be
imported and on the order of earlier draws (an LRU cache); :func:`draw` turns that pool off
while it runs (see ``_without_local_constants``). Each check uses its own seed offset, so
adding a check does not change the instances of the others.

A :class:`Instance` holds one game (every family of :mod:`tabular.game`, n from 2 to 20), a random
reference ``mu`` (softmax of logits in [-3, 3]), ``tau`` log-uniform in [0.01, 10], ``beta`` in
[0, 1] and a random logit vector ``theta`` (policies at which gradients are compared).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from tabular.game import (
    annotator_majority,
    biased_rps,
    bradley_terry,
    cyclic,
    intransitive_blend,
    perturbed_rps,
    random_game,
    softmax,
    validate_game,
)

__all__ = ["Instance", "FAMILIES", "instances", "two_action_instances", "draw"]

FAMILIES = ("bt", "random", "cyclic", "majority", "blend", "perturbed_rps", "biased_rps")


@dataclass(frozen=True)
class Instance:
    """One game with the parameters a check needs; ``scores`` only for Bradley-Terry games."""

    family: str
    P: np.ndarray
    mu: np.ndarray
    tau: float
    beta: float
    theta: np.ndarray
    scores: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self.P.shape[0]

    def describe(self) -> str:
        return f"{self.family} n={self.n} tau={self.tau:.4g} beta={self.beta:.3g}"


def _game(family: str, n: int, seed: int, draw) -> tuple[np.ndarray, np.ndarray | None]:
    if family == "bt":
        scores = np.asarray(draw(st.lists(st.floats(-4, 4), min_size=n, max_size=n)))
        return bradley_terry(scores), scores
    if family == "random":
        return random_game(n, seed), None
    if family == "cyclic":
        return cyclic(max(n, 3), draw(st.floats(0.0, 0.5))), None
    if family == "majority":
        return annotator_majority(n, draw(st.sampled_from([1, 3, 5])), seed), None
    if family == "blend":
        return intransitive_blend(max(n, 3), draw(st.floats(0.0, 1.0)), seed), None
    if family == "perturbed_rps":
        return perturbed_rps(), None
    return biased_rps(), None


@st.composite
def instances(draw, n_max: int = 20, families=FAMILIES, tau_range=(0.01, 10.0),
              beta_range=(0.0, 1.0), logit_scale: float = 2.0, min_skew: float = 0.0):
    """Strategy for :class:`Instance` (``logit_scale`` bounds the policy logits ``theta``;
    ``min_skew`` rejects games with ``max |P - 1/2| < min_skew``, e.g. the trivial P = 1/2)."""
    family = draw(st.sampled_from(families))
    n = draw(st.integers(2, n_max))
    seed = draw(st.integers(0, 2**16))
    P, scores = _game(family, n, seed, draw)
    assume(np.abs(P - 0.5).max() >= min_skew)
    n = P.shape[0]
    mu = softmax(np.asarray(draw(st.lists(st.floats(-3, 3), min_size=n, max_size=n))))
    lo, hi = np.log10(tau_range[0]), np.log10(tau_range[1])
    tau = float(10.0 ** draw(st.floats(lo, hi)))
    beta = draw(st.floats(*beta_range))
    theta = np.asarray(draw(st.lists(st.floats(-logit_scale, logit_scale), min_size=n, max_size=n)))
    P, mu = validate_game(P, mu)
    return Instance(family, P, mu, tau, beta, theta, scores)


@st.composite
def two_action_instances(draw):
    """Two actions, ``P[0, 1]`` uniform in [0, 1] (App. F)."""
    p = draw(st.floats(0.0, 1.0))
    P = np.array([[0.5, p], [1.0 - p, 0.5]])
    mu = softmax(np.asarray(draw(st.lists(st.floats(-3, 3), min_size=2, max_size=2))))
    tau = float(10.0 ** draw(st.floats(-2, 1)))
    return Instance("two_action", *validate_game(P, mu), tau, 0.0, np.zeros(2))


@contextmanager
def _without_local_constants():
    """Empty Hypothesis's pool of constants harvested from the loaded modules, for reproducibility.

    Uses ``hypothesis.internal.conjecture.providers`` (``_get_local_constants``,
    ``CONSTANTS_CACHE``, present since 6.131); on versions without them this does nothing.
    """
    try:
        from hypothesis.internal.conjecture import providers
        original = providers._get_local_constants
        cache = providers.CONSTANTS_CACHE.cache  # the OrderedDict inside its LRUCache
        empty = type(providers.GLOBAL_CONSTANTS)(
            integers=type(providers.GLOBAL_CONSTANTS.integers)(),
            floats=type(providers.GLOBAL_CONSTANTS.floats)(key=providers.float_to_int),
            bytes=type(providers.GLOBAL_CONSTANTS.bytes)(),
            strings=type(providers.GLOBAL_CONSTANTS.strings)(),
        )
    except (ImportError, AttributeError):  # older Hypothesis: no local constants to remove
        yield
        return
    cache.clear()
    providers._get_local_constants = lambda: empty
    try:
        yield
    finally:
        providers._get_local_constants = original
        cache.clear()


def draw(strategy, count: int, seed: int) -> list:
    """``count`` examples of ``strategy``, a deterministic function of ``(strategy, count, seed)``."""
    out: list = []

    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), derandomize=False)
    @hypothesis_seed(seed)
    @given(strategy)
    def collect(example):
        out.append(example)

    with _without_local_constants():
        collect()
    return out[:count]
