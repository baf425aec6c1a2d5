"""Online and offline preference optimisation on tabular games, exact and sampled.

Every algorithm acts on a batch of ``B`` games at once (``P``: (B, n, n), ``mu``: (B, n); a batch
element is one game x one seed), in float64 torch. Which methods exist, where each draws ``y`` and
``y'`` and which loss it feeds is the one table :data:`tabular.methods.METHODS` (SPEC §4); this
module reads it and keeps no list of its own.

One path for the exact and the sampled form (the weighted pairs):

1. :func:`pairs` ``(P, log_q, log_q', label_type, batch) -> Pairs(y, y', weight, label)``, with
   ``q = mix_{beta_y}(pi)``, ``q' = mix_{beta_y'}(pi)`` detached (the samples carry no gradient).
   **exact** (``batch`` None): every pair, weight ``q(y) q'(y')``, the expected label
   (:func:`~tabular.losses.label_matrix`: ``P``, or ``1[P > 1/2]`` for hard labels; the losses are
   linear in the label, so Bernoulli labels have soft labels' expectation). **sampled**: ``batch``
   pairs drawn i.i.d., weight ``1/K``, labels soft, Bernoulli or hard. The policy gradient, linear in the
   label, sums ``y'`` out of the exact form (weight ``pi(y)``, label ``(P q')(y)``); ``rl`` draws
   single responses (:func:`responses`) labelled by their Bradley-Terry score.
2. One pairwise objective, :func:`pairwise_objective` ``= sum_k w_k loss(h(y_k, y'_k), label_k)``
   (``h = r(y) - r(y')``, ``r = log pi - log mu``; IPO, DPO or SLiC from :mod:`tabular.losses`),
   and one policy-gradient objective, :func:`policy_gradient_objective`
   ``= sum_k w_k policy_gradient_loss(log pi(y_k), reward_k - tau r(y_k))``;
   :func:`method_loss` picks pairs and objective for a config.
3. Mirror descent (``md``): :func:`nash_md_step` and :func:`extragradient_step`, with ``P @ q``
   from one estimator, :func:`P_times` (exact, or ``batch`` draws of ``y'`` labelled against
   every ``y``).

Gradient methods act on softmax logits ``theta`` (SGD or Adam; one parameter tensor of shape (B, n),
and both optimisers act element-wise, so the batch elements stay independent). Mirror-descent
methods act on ``log pi`` directly.

Steps: :func:`make_state` builds the state, :func:`step` advances it once, :func:`run` loops and
records :mod:`metrics <tabular.metrics>` every ``record_every`` steps into a frozen
:class:`RunResult`. :func:`limit_point` (:mod:`tabular.limits`) gives each method's known limit.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import torch

from .game import validate_beta, validate_eta, validate_game, validate_seed, validate_tau
from .limits import limit_point
from .losses import LABEL_TYPES, label_matrix, make_labels, pairwise_loss, policy_gradient_loss
from .methods import METHODS, Method

__all__ = [
    "AlgorithmConfig",
    "State",
    "make_state",
    "step",
    "run",
    "RunResult",
    "Pairs",
    "pairs",
    "responses",
    "draw",
    "P_times",
    "sampling_log_policy",
    "label_matrix",
    "pairwise_objective",
    "policy_gradient_objective",
    "method_loss",
    "nash_md_step",
    "extragradient_step",
    "nash_md_eta",
    "limit_point",
]


@dataclass(frozen=True)
class AlgorithmConfig:
    """Hyperparameters of one algorithm (all of them, so one config is saved beside each run)."""

    name: str
    """One of :data:`tabular.methods.METHODS`."""
    tau: float = 0.1
    """KL-regularisation strength (> 0)."""
    beta: float = 0.0
    """Geometric-mixture coefficient for ipo_md and nash_md_pg (SPEC §4); ignored elsewhere."""
    eta: float | None = None
    """Mirror-descent step for nash_md / extragradient. nash_md: None = decaying
    ``2 / (tau (t + 2))`` (Munos et al. Thm 1). extragradient: None = ``1 / (2 (tau + 1))``."""
    lr: float | None = None
    """Learning rate of the gradient methods; None = the per-optimiser default below."""
    optimizer: str = "sgd"
    """``sgd`` or ``adam`` (gradient methods only)."""
    sampled: bool = False
    """False: exact population gradients / updates. True: ``batch`` sampled pairs per step."""
    batch: int = 64
    """Pairs (or samples) per game per step in the sampled form."""
    label_type: str = "soft"
    """``soft`` | ``bernoulli`` | ``hard`` (SPEC §3)."""

    def __post_init__(self):
        if self.name not in METHODS:
            raise ValueError(f"unknown algorithm {self.name!r}; choose from {', '.join(METHODS)}")
        validate_tau(self.tau)
        validate_beta(self.beta)
        if self.eta is not None:
            validate_eta(self.eta)
            if self.name == "nash_md" and self.eta * self.tau > 1:
                raise ValueError(f"nash_md needs eta * tau <= 1, got eta = {self.eta}, tau = {self.tau}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr > 0 required, got lr = {self.lr!r}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if isinstance(self.batch, bool) or not isinstance(self.batch, (int, np.integer)) or self.batch < 1:
            raise ValueError(f"batch must be a positive integer, got {self.batch!r}")
        if self.label_type not in LABEL_TYPES:
            raise ValueError(f"unknown label type {self.label_type!r}; choose from {', '.join(LABEL_TYPES)}")
        if self.effective_lr is not None and not self.effective_lr > 0:
            raise ValueError(f"at tau = {self.tau!r} the default SGD learning rate of {self.name} "
                             f"underflows to 0; pass lr explicitly")

    @property
    def method(self) -> Method:
        """The method's row of :data:`tabular.methods.METHODS`."""
        return METHODS[self.name]  # the name was checked in __post_init__

    @property
    def kind(self) -> str:
        """``pairwise``, ``pg``, ``rl`` or ``md`` (:class:`tabular.methods.Method`)."""
        return self.method.kind

    @property
    def effective_lr(self) -> float | None:
        """``lr`` if given, else the optimizer's default: 0.01 for Adam, the method row's
        ``sgd_lr(tau)`` for SGD; None for the closed-form (``md``) updates, which take no lr."""
        if self.method.sgd_lr is None:
            return None
        if self.lr is not None:
            return self.lr
        if self.optimizer == "adam":
            return 0.01  # Adam moves each logit by about lr per step, whatever the loss scale
        return self.method.sgd_lr(self.tau)  # the method's row (tabular.methods: ipo_lr, ...)


def nash_md_eta(cfg: AlgorithmConfig, t: int) -> float:
    """Mirror-descent step at iteration ``t`` (0-based)."""
    if cfg.eta is not None:
        return cfg.eta
    if cfg.name == "nash_md":
        return 2.0 / (cfg.tau * (t + 2))
    return 1.0 / (2.0 * (cfg.tau + 1.0))


# --------------------------------------------------------------------------------------------
# State.
# --------------------------------------------------------------------------------------------
@dataclass
class State:
    """Batch state: ``theta`` are logits (gradient methods) or ``log pi`` (mirror descent)."""

    cfg: AlgorithmConfig
    P: torch.Tensor  # (B, n, n)
    log_mu: torch.Tensor  # (B, n)
    theta: torch.Tensor  # (B, n)
    scores: torch.Tensor | None  # (B, n) Bradley-Terry scores (rl only)
    optimizer: torch.optim.Optimizer | None
    generator: torch.Generator
    t: int = 0
    last_loss: torch.Tensor | None = None  # (B,) loss of the last step (gradient methods)

    @property
    def log_pi(self) -> torch.Tensor:
        return torch.log_softmax(self.theta.detach(), dim=-1)


def make_state(cfg: AlgorithmConfig, P, mu=None, *, scores=None, seed: int = 0,
               init="mu", init_scale: float = 1.0) -> State:
    """Validate a batch of games and build the initial state.

    Args:
      P: (n, n) or (B, n, n). mu: (n,) or (B, n), default uniform. scores: BT scores (B, n) (rl).
      seed: seeds the torch generator used for sampling (and ``init="random"``).
      init: ``mu`` (pi_0 = mu, the paper's start from the SFT policy), ``uniform``, ``random``
        (below) or an array of log-probabilities, (n,) or (B, n), to start from; ``random``
        (logits ``log mu + init_scale * N(0, 1)``).
    """
    P, mu = validate_game(P, mu)
    seed = validate_seed(seed)
    if P.ndim == 2:
        P = P[None]
    B, n, _ = P.shape
    mu = np.broadcast_to(mu, (B, n)).copy()
    if cfg.name == "rl":
        if scores is None:
            raise ValueError("rl needs Bradley-Terry scores (use a 'bt' game)")
        scores = torch.as_tensor(np.broadcast_to(np.asarray(scores, np.float64), (B, n)).copy())
    gen = torch.Generator().manual_seed(int(seed))
    log_mu = torch.log(torch.tensor(mu))
    if not isinstance(init, str):
        init = np.asarray(init, np.float64)
        if init.shape not in ((n,), (B, n)) or not np.all(np.isfinite(init)):
            raise ValueError(f"init must be finite log-probabilities of shape ({n},) or ({B}, {n}), "
                             f"got shape {init.shape}"
                             + ("" if np.all(np.isfinite(init)) else " with nan/inf"))
        theta = torch.tensor(np.broadcast_to(init, (B, n)).copy())
    elif init == "mu":
        theta = log_mu.clone()
    elif init == "uniform":
        theta = torch.zeros(B, n, dtype=torch.float64)
    elif init == "random":
        theta = log_mu + init_scale * torch.randn(B, n, dtype=torch.float64, generator=gen)
    else:
        raise ValueError(f"init must be 'mu', 'uniform' or 'random', got {init!r}")
    theta = torch.log_softmax(theta, -1)
    optimizer = None
    if cfg.method.learns_from_samples:  # gradient methods (all but the closed-form md updates)
        theta.requires_grad_(True)
        opt_cls = torch.optim.SGD if cfg.optimizer == "sgd" else torch.optim.Adam
        optimizer = opt_cls([theta], lr=cfg.effective_lr)
    return State(cfg, torch.tensor(P), log_mu, theta, scores, optimizer, gen)  # copy: P may be read-only


# --------------------------------------------------------------------------------------------
# Where the pairs come from: one weighting for the exact and the sampled form.
# --------------------------------------------------------------------------------------------
def sampling_log_policy(log_pi: torch.Tensor, log_mu: torch.Tensor, beta: float) -> torch.Tensor:
    """log of ``mix_beta(pi) ∝ pi^(1-beta) mu^beta``, detached: samples carry no gradient."""
    return torch.log_softmax((1.0 - beta) * log_pi.detach() + beta * log_mu, dim=-1)


class Pairs(NamedTuple):
    """Weighted pairs ``(y, y')`` with their labels; a loss over them is ``sum_k weight_k loss_k``.

    Sampled form: ``K`` drawn pairs, ``y`` and ``y_prime`` (B, K) indices, weight ``1/K``.
    Exact form: every pair, laid out as a grid with ``y`` on axis 1 and ``y'`` on axis 2
    (``y`` and ``y_prime`` are None), weight ``q(y) q'(y')`` of shape (B, n, n); where the
    consumer is linear in the label, ``y'`` is summed out in closed form instead: axis 2 has
    size 1, weight ``q(y)`` and label ``E_{y' ~ q'} label(y, y')`` (B, n, 1); where ``y`` and
    ``y'`` come from one distribution, the pairs ``y <= y'`` only, ``y`` and ``y_prime`` (K,)
    indices shared by the games, weight (B, K) (:func:`_pairs_one_sampler`).
    """

    y: torch.Tensor | None
    y_prime: torch.Tensor | None
    weight: torch.Tensor
    label: torch.Tensor
    incidence: torch.Tensor | None = None
    """Folded pairs only: (n, K), +1 at ``y`` and -1 at ``y'`` in column k (all 0 where
    ``y = y'``), so that ``x @ incidence`` is every margin ``x(y) - x(y')``, each one subtraction
    rounded once as written, and its gradient one product (a DPO step spent a quarter of its time
    in the two gathers and their scatter-adds)."""

    def margin(self, x: torch.Tensor) -> torch.Tensor:
        """``x(y) - x(y')`` for every pair (``x`` (B, n), e.g. the log-ratio: the pairwise margin)."""
        if self.incidence is not None:
            return x @ self.incidence
        return self.at_y(x) - self.at_y_prime(x)

    def at_y(self, x: torch.Tensor) -> torch.Tensor:
        """Per-response values ``x`` (B, n) at each pair's ``y``."""
        # The grid broadcasts rather than gathers: autograd then sums a response's gradient over
        # its pairs in the same order as a plain (B, n, n) expression (bit-identical results).
        return x[:, :, None] if self.y is None else _select(x, self.y)

    def at_y_prime(self, x: torch.Tensor) -> torch.Tensor:
        """Per-response values ``x`` (B, n) at each pair's ``y'``."""
        return x[:, None, :] if self.y_prime is None else _select(x, self.y_prime)

    def total(self, per_pair: torch.Tensor) -> torch.Tensor:
        """``sum_k weight_k per_pair_k`` per game, shape (B,)."""
        return (self.weight * per_pair).sum(tuple(range(1, per_pair.ndim)))


def _select(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x`` (B, n) at ``index``: (B, K) per game, or (K,) one layout shared by the games."""
    return x.index_select(1, index) if index.ndim == 1 else x.gather(1, index)


def draw(log_q: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` i.i.d. responses per game from ``exp(log_q)`` (B, n); indices (B, k)."""
    return torch.multinomial(torch.exp(log_q), k, replacement=True, generator=generator)


def pairs(P, log_q, log_q_prime, label_type: str, batch: int | None = None, generator=None,
          sum_out_y_prime: bool = False) -> Pairs:
    """The pairs a loss is averaged over: ``y ~ q``, ``y' ~ q'`` (both detached), label from ``P``.
    ``log_q_prime`` None: ``y'`` is drawn from ``q`` too (one sampler).

    ``batch`` None: the exact form, every pair weighted ``q(y) q'(y')`` with its expected label
    (:func:`label_matrix`); with one sampler only the pairs ``y <= y'`` (:func:`_pairs_one_sampler`,
    the same objective); with ``sum_out_y_prime`` (for a loss linear in the label, the policy
    gradient) ``y'`` is summed out: ``label(y) = (label_matrix @ q')(y)``, weight ``q(y)``.
    ``batch`` K: K pairs drawn i.i.d. (``y`` first, then ``y'``, then the labels, from one
    ``generator``), weight ``1/K``, labels soft, Bernoulli or hard (:func:`make_labels`).
    """
    one_sampler = log_q_prime is None
    if one_sampler:
        log_q_prime = log_q  # the same tensor: a sampled form draws exactly as it did before
    if batch is None:
        if sum_out_y_prime:
            return responses(log_q, P_times(P, log_q_prime, label_type))
        if one_sampler and log_q.shape[-1] <= FOLD_MAX_ACTIONS:
            return _pairs_one_sampler(P, log_q, label_type)
        weight = torch.exp(log_q)[:, :, None] * torch.exp(log_q_prime)[:, None, :]  # (B, n, n)
        return Pairs(None, None, weight, label_matrix(P, label_type))
    y = draw(log_q, batch, generator)  # (B, K)
    y_prime = draw(log_q_prime, batch, generator)
    label = make_labels(P[torch.arange(P.shape[0])[:, None], y, y_prime], label_type, generator)
    return Pairs(y, y_prime, _uniform_weight(y), label)


def _pairs_one_sampler(P, log_q, label_type: str) -> Pairs:
    """The exact form when ``y`` and ``y'`` come from one distribution ``q``: the pairs ``y <= y'``
    only, ``(y, y')`` standing for itself and ``(y', y)`` (weight ``2 q(y) q(y')``, ``q(y)^2`` on
    the diagonal). Every pairwise loss is ``p l(h) + (1 - p) l(-h)`` (:mod:`tabular.losses`), so
    the swapped pair, with margin ``-h`` and label ``1 - p`` (``P + P^T = 1``; hard labels keep
    it), has the same loss: the same objective as the full grid, to round-off, over n(n+1)/2
    pairs instead of n^2 (the exact forms of online and offline DPO spent most of a step on the
    grid's two log-sigmoids per pair)."""
    B, n = log_q.shape
    y, y_prime, count, incidence = _fold_layout(n, log_q.dtype, log_q.device)
    q = torch.exp(log_q)
    weight = count * q.index_select(1, y) * q.index_select(1, y_prime)  # (B, K)
    label = label_matrix(P, label_type).reshape(B, n * n).index_select(1, y * n + y_prime)
    return Pairs(y, y_prime, weight, label, incidence)


# Above this many actions the fold does not pay: its margins are a product with the (n, K)
# incidence matrix, O(n^3) per game against the grid's O(n^2). Measured (online DPO exact step,
# one thread): the fold is faster at n = 10 (B = 1000: 2.8 against 3.8 ms) to n = 100 (B = 16: 5.2
# against 6.5 ms) and slower at n = 200 (37 against 24 ms); at n = 585 its incidence is 0.8 GB.
FOLD_MAX_ACTIONS = 128


@functools.lru_cache(maxsize=16)
def _fold_layout(n: int, dtype: torch.dtype, device: torch.device):
    """The pairs ``y <= y'`` of n actions, one layout for every game and step: ``(y, y', count,
    incidence)`` (count 2 off the diagonal, 1 on it; incidence as :class:`Pairs` documents).
    Cached: rebuilding it was a fifth of a one-game step at n = 10."""
    y, y_prime = torch.triu_indices(n, n, device=device)  # (K,)
    count = torch.where(y == y_prime, 1.0, 2.0).to(dtype)
    columns = torch.arange(y.numel(), device=device)
    incidence = torch.zeros(n, y.numel(), dtype=dtype, device=device)
    incidence[y, columns] += 1.0
    incidence[y_prime, columns] -= 1.0  # the diagonal pairs' columns are 0: their margin is 0
    return y, y_prime, count, incidence


def responses(log_q, values, batch: int | None = None, generator=None) -> Pairs:
    """Single responses ``y ~ q`` (no ``y'``), labelled ``values(y)`` (values: (B, n)).

    Exact: every ``y`` weighted ``q(y)`` (the grid with an axis 2 of size 1); sampled: ``batch``
    draws weighted ``1/K``.
    """
    if batch is None:
        return Pairs(None, None, torch.exp(log_q)[:, :, None], values[:, :, None])
    y = draw(log_q, batch, generator)
    return Pairs(y, None, _uniform_weight(y), values.gather(1, y))


def _uniform_weight(y: torch.Tensor) -> torch.Tensor:
    # 1/K per drawn pair: the batch mean written as a weighted sum (the same number when K is a
    # power of two, since scaling by 2^-k is exact)
    return torch.full(y.shape, 1.0 / y.shape[-1], dtype=torch.float64)


def P_times(P, log_q, label_type: str = "soft", batch: int | None = None, generator=None):
    """``(label_matrix @ q)(y)`` for every ``y`` (B, n): exact, or from ``batch`` draws ``y' ~ q``
    each labelled against every ``y`` (full information). Nash-MD and extragradient use it."""
    if batch is None:
        return torch.einsum("bij,bj->bi", label_matrix(P, label_type), torch.exp(log_q))
    y_prime = draw(log_q, batch, generator)  # (B, K)
    cols = torch.gather(P, 2, y_prime[:, None, :].expand(-1, P.shape[1], -1))  # (B, n, K)
    return make_labels(cols, label_type, generator).mean(-1)


# --------------------------------------------------------------------------------------------
# The two losses of the gradient methods, on weighted pairs.
# --------------------------------------------------------------------------------------------
def pairwise_objective(pr: Pairs, log_ratio: torch.Tensor, loss: str, tau: float) -> torch.Tensor:
    """``sum_k w_k loss(h_k, label_k, tau)`` per game (B,), ``h_k = r(y_k) - r(y'_k)``,
    ``r = log pi - log mu`` (``log_ratio``, carrying the gradient); loss from
    :func:`tabular.losses.pairwise_loss`."""
    return pr.total(pairwise_loss(loss, pr.margin(log_ratio), pr.label, tau))


def policy_gradient_objective(pr: Pairs, log_pi, log_ratio, reward, tau: float) -> torch.Tensor:
    """``sum_k w_k policy_gradient_loss(log pi(y_k), reward_k - tau r(y_k))`` per game (B,): its
    gradient is minus the REINFORCE estimate of ``E_{y~pi}[grad log pi(y) A(y)]`` (exact when
    the weights are ``pi(y)``). ``reward``: ``label - 1/2`` (preferences) or ``s(y)`` (rl)."""
    advantage = reward - tau * pr.at_y(log_ratio.detach())
    return pr.total(policy_gradient_loss(pr.at_y(log_pi), advantage))


def method_loss(cfg: AlgorithmConfig, theta, log_mu, P, scores=None, generator=None) -> torch.Tensor:
    """The loss (B,) whose gradient in ``theta`` is one step of a gradient method (exact or
    sampled per ``cfg``); pairs drawn as :data:`tabular.methods.METHODS` says."""
    method = cfg.method
    if not method.learns_from_samples:
        raise ValueError(f"{cfg.name} is a closed-form update ({method.kind}); it has no loss")
    batch = cfg.batch if cfg.sampled else None
    log_pi = torch.log_softmax(theta, -1)
    log_ratio = log_pi - log_mu  # r = log pi - log mu
    beta_y, beta_y_prime = method.betas(cfg.beta)
    log_q = sampling_log_policy(theta, log_mu, beta_y)  # (y ~ pi: log_q is log_pi bit for bit)
    if method.kind == "pairwise":
        # one sampler for y and y' (every pairwise method: pi, mu or the same mixture): the exact
        # form then needs only the pairs y <= y' (:func:`pairs`)
        log_q_prime = (None if beta_y_prime == beta_y else
                       sampling_log_policy(theta, log_mu, beta_y_prime))
        pr = pairs(P, log_q, log_q_prime, cfg.label_type, batch, generator)
        return pairwise_objective(pr, log_ratio, method.loss, cfg.tau)
    if method.kind == "rl":  # one response, scored by the Bradley-Terry reward: no y'
        pr = responses(log_q, scores, batch, generator)
        return policy_gradient_objective(pr, log_pi, log_ratio, pr.label, cfg.tau)
    # y' mixes log pi where the pairwise branch mixes theta: the same distribution (log_softmax
    # ignores the shift), kept so that recorded runs stay bit for bit what they were
    pr = pairs(P, log_q, sampling_log_policy(log_pi, log_mu, beta_y_prime), cfg.label_type, batch,
               generator, sum_out_y_prime=True)
    return policy_gradient_objective(pr, log_pi, log_ratio, pr.label - 0.5, cfg.tau)


# --------------------------------------------------------------------------------------------
# Mirror-descent updates.
# --------------------------------------------------------------------------------------------
def nash_md_step(log_pi, log_mu, P, tau, eta, P_times_mix=None):
    """One Nash-MD step (Munos et al. 2023, Eq. 10; SPEC §4):

    ``log pi_{t+1} = (1 - eta tau) log pi_t + eta tau log mu + eta P @ mix_{eta tau}(pi_t) + c``.
    ``P_times_mix`` replaces the exact ``P @ mix`` (the sampled form or hard labels: :func:`P_times`).
    """
    if P_times_mix is None:
        P_times_mix = P_times(P, sampling_log_policy(log_pi, log_mu, eta * tau))
    return torch.log_softmax((1 - eta * tau) * log_pi + eta * tau * log_mu + eta * P_times_mix, -1)


def extragradient_step(log_pi, log_mu, P, tau, eta, estimate=None):
    """Entropy-regularised extragradient (Cen, Wei, Chi 2021, arXiv 2105.15186, Alg. 1; EGPO):

    ``log pi_half = (1 - eta tau) log pi_t + eta tau log mu + eta P pi_t + c``,
    ``log pi_{t+1} = (1 - eta tau) log pi_t + eta tau log mu + eta P pi_half + c``.
    ``estimate(log_q)`` replaces the exact ``P @ q`` (the sampled form or hard labels: :func:`P_times`).
    """
    estimate = estimate or (lambda log_q: P_times(P, log_q))
    prior = (1 - eta * tau) * log_pi + eta * tau * log_mu
    log_half = torch.log_softmax(prior + eta * estimate(log_pi), -1)
    return torch.log_softmax(prior + eta * estimate(log_half), -1)


# --------------------------------------------------------------------------------------------
# One step, and the loop.
# --------------------------------------------------------------------------------------------
def step(state: State) -> State:
    """Advance every game in the batch by one iteration (in place); returns ``state``."""
    cfg = state.cfg
    if cfg.kind == "md":
        eta = nash_md_eta(cfg, state.t)
        P_times_q = partial(P_times, state.P, label_type=cfg.label_type,
                            batch=cfg.batch if cfg.sampled else None, generator=state.generator)
        if cfg.name == "nash_md":
            mix = sampling_log_policy(state.theta, state.log_mu, eta * cfg.tau)
            state.theta = nash_md_step(state.theta, state.log_mu, state.P, cfg.tau, eta, P_times_q(mix))
        else:
            state.theta = extragradient_step(state.theta, state.log_mu, state.P, cfg.tau, eta, P_times_q)
    else:
        loss = method_loss(cfg, state.theta, state.log_mu, state.P, state.scores, state.generator)
        state.optimizer.zero_grad()
        loss.sum().backward()  # games are independent: the sum gives each its own gradient
        state.optimizer.step()
        state.last_loss = loss.detach()
    state.t += 1
    return state


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunResult:
    """What :func:`run` recorded: ``steps`` (K,), ``metrics[name]`` (K, B), ``log_pi`` (K, B, n) at
    the recorded steps, final policies (B, n); ``pi_star`` (B, n) or None (no ``kl_to_opt``).

    Frozen: to attach a number computed after the run, make a new result,
    ``dataclasses.replace(res, extra={**res.extra, "limit_distance": d})`` (or
    :meth:`with_extra`); ``extra`` is a read-only mapping.
    """

    config: dict
    steps: np.ndarray
    metrics: dict[str, np.ndarray]
    final_pi: np.ndarray
    final_log_pi: np.ndarray
    pi_star: np.ndarray | None
    log_pi: np.ndarray
    extra: MappingProxyType = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    def with_extra(self, **values) -> RunResult:
        """A copy with ``values`` added to ``extra``."""
        return replace(self, extra={**self.extra, **values})


def run(cfg: AlgorithmConfig, P, mu=None, *, steps: int = 1000, seed: int = 0,
        record_every: int = 10, record_at=None, scores=None, init="mu", pi_star=None,
        progress=None, extra=None) -> RunResult:
    """Run ``steps`` iterations on a batch of games, recording metrics every ``record_every``.

    ``record_at`` (an iterable of iterations, 0 = the start) replaces the ``record_every`` grid
    (e.g. log-spaced steps for plots). ``init`` as in :func:`make_state`. ``pi_star`` (n,) or
    (B, n): the equilibria for ``kl_to_opt`` (e.g. :func:`tabular.solvers.solve_equilibrium` on the
    stack); None records no ``kl_to_opt``. ``progress`` is an optional callable
    ``progress(n_steps_done)`` (e.g. a tqdm ``update``). ``extra``: a mapping stored read-only in
    the result.
    Metrics (see :mod:`tabular.metrics`): ``kl_to_opt`` = KL(pi* || pi_t), ``gap``,
    ``winrate_vs_mu``, ``kl_to_ref`` = KL(pi_t || mu), ``loss`` (gradient methods: the step's loss).
    """
    from .metrics import policy_metrics

    for name, value, least in (("steps", steps, 0), ("record_every", record_every, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    state = make_state(cfg, P, mu, scores=scores, seed=seed, init=init)
    P_np = state.P.numpy()
    mu_np = torch.exp(state.log_mu).numpy()
    if pi_star is not None:
        pi_star = np.broadcast_to(np.asarray(pi_star, np.float64), mu_np.shape)

    if record_at is None:
        record_at = set(range(0, steps + 1, record_every)) | {steps}
    else:
        record_at = {int(t) for t in record_at}
    recorded_steps, recorded_log_pi, rows = [], [], []

    def record():
        log_pi = state.log_pi.numpy().copy()
        m = policy_metrics(P_np, mu_np, cfg.tau, log_pi, pi_star)
        m["loss"] = (state.last_loss.numpy() if state.last_loss is not None
                     else np.full(log_pi.shape[0], np.nan))
        recorded_steps.append(state.t)
        recorded_log_pi.append(log_pi)
        rows.append(m)

    if 0 in record_at:
        record()
    for t in range(1, steps + 1):
        step(state)
        if t in record_at:
            record()
        if progress is not None:
            progress(1)
    metrics = {k: np.stack([r[k] for r in rows]) for k in rows[0]} if rows else {}
    log_pi = state.log_pi.numpy()
    return RunResult(asdict(cfg), np.asarray(recorded_steps), metrics, np.exp(log_pi), log_pi, pi_star,
                     np.stack(recorded_log_pi) if recorded_log_pi else np.empty((0,) + log_pi.shape),
                     extra or {})
