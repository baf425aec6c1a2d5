"""Online and offline preference optimisation on tabular games, exact and sampled.

Every algorithm acts on a batch of ``B`` games at once (``P``: (B, n, n), ``mu``: (B, n); a batch
element is one game x one seed), in float64 torch. What distinguishes the algorithms is where the
pair ``(y, y')`` is drawn from (SPEC §4):

| name          | pair / sample drawn from            | update                                    |
|---------------|-------------------------------------|-------------------------------------------|
| offline_ipo/dpo/slic | ``mu`` x ``mu``              | gradient of the pairwise loss             |
| online_ipo/dpo/slic  | ``pi_t`` x ``pi_t``          | gradient of the pairwise loss             |
| ipo_md        | ``mix_beta(pi_t)`` x same           | gradient of the IPO loss (margins under pi)|
| nash_md_pg    | ``y ~ pi_t``, ``y' ~ mix_beta(pi_t)`` | REINFORCE on ``P(y,y') - 1/2 - tau r_pi(y)`` |
| self_play     | nash_md_pg with ``beta = 0``        |                                           |
| rl            | ``y ~ pi_t``, BT score ``s(y)``     | REINFORCE on ``s(y) - tau r_pi(y)``       |
| nash_md       | (closed form)                       | ``log pi' = (1-eta tau) log pi + eta tau log mu + eta P mix_{eta tau}(pi)`` |
| extragradient | (closed form, Cen et al. 2021)      | a half step from ``pi_t``, then the step from ``pi_t`` with ``P`` at the half step |

Forms:

- **exact**: population expectations, no noise. Gradient methods differentiate (autograd of the
  shared losses in :mod:`tabular.losses`) ``sum_{y,y'} q(y) q(y') loss(h(y,y'), P[y,y'])`` with the
  sampling distribution ``q`` detached (the samples carry no gradient). Because each loss is linear in
  its label, Bernoulli labels have the same expectation as soft labels; hard labels differ.
- **sampled**: each step draws ``batch`` pairs per game and seed, labels them from ``P`` (soft,
  Bernoulli or hard), and averages the same loss over the batch.

Gradient methods act on softmax logits ``theta`` (SGD or Adam; one parameter tensor of shape (B, n),
and both optimisers act element-wise, so the batch elements stay independent). Mirror-descent
methods act on ``log pi`` directly.

Steps: :func:`make_state` builds the state, :func:`step` advances it once, :func:`run` loops and
records :mod:`metrics <tabular.metrics>` every ``record_every`` steps.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .game import validate_beta, validate_eta, validate_game, validate_seed, validate_tau
from .losses import LABEL_TYPES, make_labels, pairwise_loss, policy_gradient_loss

__all__ = [
    "ALGORITHMS",
    "PAIRWISE_ALGORITHMS",
    "AlgorithmConfig",
    "State",
    "make_state",
    "step",
    "run",
    "RunResult",
    "sampling_log_policy",
    "label_matrix",
    "population_pairwise_loss",
    "sampled_pairwise_loss",
    "exact_pg_loss",
    "sampled_pg_loss",
    "nash_md_step",
    "extragradient_step",
    "nash_md_eta",
    "limit_point",
]

# name -> (kind, loss, pair sampling). kind: "pairwise" | "pg" | "md"
ALGORITHMS: dict[str, tuple[str, str | None, str | None]] = {
    "offline_ipo": ("pairwise", "ipo", "mu"),
    "offline_dpo": ("pairwise", "dpo", "mu"),
    "offline_slic": ("pairwise", "slic", "mu"),
    "online_ipo": ("pairwise", "ipo", "pi"),
    "online_dpo": ("pairwise", "dpo", "pi"),
    "online_slic": ("pairwise", "slic", "pi"),
    "ipo_md": ("pairwise", "ipo", "mix"),
    "nash_md_pg": ("pg", None, "mix"),
    "self_play": ("pg", None, "pi"),
    "rl": ("pg", None, "score"),
    "nash_md": ("md", None, None),
    "extragradient": ("md", None, None),
}
PAIRWISE_ALGORITHMS = [k for k, v in ALGORITHMS.items() if v[0] == "pairwise"]


@dataclass(frozen=True)
class AlgorithmConfig:
    """Hyperparameters of one algorithm (all of them, so one config is saved beside each run)."""

    name: str
    """One of :data:`ALGORITHMS`."""
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
        if self.name not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {self.name!r}; choose from {', '.join(ALGORITHMS)}")
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
        if self.kind != "md" and not self.effective_lr > 0:
            raise ValueError(f"at tau = {self.tau!r} the default SGD learning rate of {self.name} "
                             f"underflows to 0; pass lr explicitly")

    @property
    def kind(self) -> str:
        return ALGORITHMS[self.name][0]

    @property
    def effective_beta(self) -> float:
        """Mixture coefficient actually used: 0 for online/self-play, 1 for offline (mu samples)."""
        sampling = ALGORITHMS[self.name][2]
        return {"pi": 0.0, "mu": 1.0, "mix": self.beta}.get(sampling, 0.0)

    @property
    def effective_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        if self.optimizer == "adam":
            return 0.01  # Adam moves each logit by about lr per step, whatever the loss scale
        # SGD on the exact online-IPO loss: linearised at pi*, the update is theta -= lr J dtheta
        # with J = 4 D - (4 / tau) D A D (D = diag(pi) - pi pi^T, A = P - 1/2 skew). Its symmetric
        # part is O(1) whatever tau, its rotation grows like 1/tau on intransitive games, and
        # plain gradient steps are stable only for lr < 2 Re(l) / |l|^2 over J's eigenvalues l,
        # i.e. lr = O(tau^2) for small tau. min(0.5, 20 tau^2) converged on BT, cyclic, random
        # and majority games with non-uniform mu for tau in [0.01, 10]; lr 0.5 at tau = 0.1 and
        # lr 2 tau at tau = 0.05 oscillate on cyclic(5). Convergence is then slow at small tau:
        # that is the method (extragradient is the fast alternative), not the step size.
        # Written without tau**2 in a denominator and with tau * tau (inf, not OverflowError, for
        # huge tau): every tau that validate_tau accepts, 1e-300 to 1e300, gives a finite lr.
        tau = self.tau
        lr_pairwise = min(0.5, 20.0 * tau * tau)
        # The policy-gradient objectives are tau/4 times IPO's (Prop. 4.2: grad IPO = -(4/tau)
        # grad self-play), so with lr x 4/tau self_play follows online_ipo step for step. DPO and
        # SLiC get lr / (2 tau^2) and lr / (2 tau): measured, not derived (their gradients in h
        # scale like tau, and the rotation like 1/tau); 4x and 16x the DPO default oscillate on
        # a BT-cyclic blend at tau = 0.1.
        loss = ALGORITHMS[self.name][1]
        if loss == "dpo":  # lr_pairwise / (2 tau^2)
            return min(0.25 / tau / tau, 10.0)
        if loss == "slic":  # lr_pairwise / (2 tau)
            return min(0.25 / tau, 10.0 * tau)
        return lr_pairwise if self.kind == "pairwise" else min(2.0 / tau, 80.0 * tau)  # x 4/tau


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
                             f"got shape {init.shape}" + ("" if np.all(np.isfinite(init)) else " with nan/inf"))
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
    if cfg.kind in ("pairwise", "pg"):
        theta.requires_grad_(True)
        opt_cls = torch.optim.SGD if cfg.optimizer == "sgd" else torch.optim.Adam
        optimizer = opt_cls([theta], lr=cfg.effective_lr)
    return State(cfg, torch.tensor(P), log_mu, theta, scores, optimizer, gen)  # copy: P may be read-only


# --------------------------------------------------------------------------------------------
# Losses on the batch (the shared loss functions, applied to tabular pairs).
# --------------------------------------------------------------------------------------------
def sampling_log_policy(log_pi: torch.Tensor, log_mu: torch.Tensor, beta: float) -> torch.Tensor:
    """log of ``mix_beta(pi) ∝ pi^(1-beta) mu^beta``, detached: samples carry no gradient."""
    return torch.log_softmax((1.0 - beta) * log_pi.detach() + beta * log_mu, dim=-1)


def label_matrix(P: torch.Tensor, label_type: str) -> torch.Tensor:
    """The expected label of every pair: ``P`` for soft and Bernoulli labels (the losses and the
    mirror-descent updates are linear in the label), ``1[P > 1/2]`` (ties 1/2) for hard labels.
    Every exact form uses it, so exact and sampled forms follow the same game."""
    return make_labels(P, "hard") if label_type == "hard" else P


def population_pairwise_loss(theta, log_mu, P, tau, loss, log_q, label_type="soft"):
    """``sum_{y,y'} q(y) q(y') loss(h(y, y'), label(P[y, y']), tau)`` per game, shape (B,).

    ``h(y, y') = r(y) - r(y')``, ``r = log pi - log mu``, ``pi = softmax(theta)``; ``q`` detached.
    """
    r = torch.log_softmax(theta, -1) - log_mu  # (B, n)
    margin = r[:, :, None] - r[:, None, :]  # (B, n, n)
    label = label_matrix(P, label_type)
    q = torch.exp(log_q)
    weights = q[:, :, None] * q[:, None, :]  # (B, n, n)
    return (weights * pairwise_loss(loss, margin, label, tau)).sum((-1, -2))


def _draw(log_q: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    return torch.multinomial(torch.exp(log_q), k, replacement=True, generator=gen)  # (B, k)


def sampled_pairwise_loss(theta, log_mu, P, tau, loss, log_q, batch, label_type, gen):
    """Mean over ``batch`` pairs ``y, y' ~ q`` i.i.d. of the pairwise loss, shape (B,)."""
    y = _draw(log_q, batch, gen)
    y_prime = _draw(log_q, batch, gen)
    r = torch.log_softmax(theta, -1) - log_mu
    margin = r.gather(1, y) - r.gather(1, y_prime)  # (B, K)
    p = P[torch.arange(P.shape[0])[:, None], y, y_prime]  # (B, K)
    label = make_labels(p, label_type, gen)
    return pairwise_loss(loss, margin, label, tau).mean(-1)


def _pg_advantage_exact(cfg, log_pi, log_mu, P, scores):
    r = log_pi.detach() - log_mu
    if cfg.name == "rl":
        return scores - cfg.tau * r
    m = torch.exp(sampling_log_policy(log_pi, log_mu, cfg.effective_beta))
    return torch.einsum("bij,bj->bi", label_matrix(P, cfg.label_type), m) - 0.5 - cfg.tau * r


def exact_pg_loss(cfg, theta, log_mu, P, scores=None):
    """``sum_y pi(y) * policy_gradient_loss(log pi(y), A(y))`` per game: its gradient is minus the
    exact expected policy gradient ``E_{y~pi}[grad log pi(y) A(y)]`` (pi weights detached)."""
    log_pi = torch.log_softmax(theta, -1)
    adv = _pg_advantage_exact(cfg, log_pi, log_mu, P, scores)
    weights = torch.exp(log_pi.detach())
    return (weights * policy_gradient_loss(log_pi, adv)).sum(-1)


def sampled_pg_loss(cfg, theta, log_mu, P, gen, scores=None):
    """REINFORCE with ``batch`` samples ``y ~ pi`` (and ``y' ~ mix_beta(pi)`` labelled from P)."""
    log_pi = torch.log_softmax(theta, -1)
    y = _draw(log_pi.detach(), cfg.batch, gen)
    logp_y = log_pi.gather(1, y)  # (B, K)
    r_y = logp_y.detach() - log_mu.gather(1, y)
    if cfg.name == "rl":
        adv = scores.gather(1, y) - cfg.tau * r_y
    else:
        y_prime = _draw(sampling_log_policy(log_pi, log_mu, cfg.effective_beta), cfg.batch, gen)
        p = P[torch.arange(P.shape[0])[:, None], y, y_prime]
        adv = make_labels(p, cfg.label_type, gen) - 0.5 - cfg.tau * r_y
    return policy_gradient_loss(logp_y, adv).mean(-1)


# --------------------------------------------------------------------------------------------
# Mirror-descent updates.
# --------------------------------------------------------------------------------------------
def _estimate_P_times(P, log_q, cfg, gen):
    """``P @ q`` exactly, or from ``batch`` samples ``y' ~ q`` (for every ``y``: full information)."""
    if not cfg.sampled:
        return torch.einsum("bij,bj->bi", label_matrix(P, cfg.label_type), torch.exp(log_q))
    y_prime = _draw(log_q, cfg.batch, gen)  # (B, K)
    cols = torch.gather(P, 2, y_prime[:, None, :].expand(-1, P.shape[1], -1))  # (B, n, K)
    return make_labels(cols, cfg.label_type, gen).mean(-1)


def nash_md_step(log_pi, log_mu, P, tau, eta, P_times_mix=None):
    """One Nash-MD step (Munos et al. 2023, Eq. 10; SPEC §4):

    ``log pi_{t+1} = (1 - eta tau) log pi_t + eta tau log mu + eta P @ mix_{eta tau}(pi_t) + c``.
    ``P_times_mix`` replaces the exact ``P @ mix`` (sampled form).
    """
    if P_times_mix is None:
        mix = torch.exp(sampling_log_policy(log_pi, log_mu, eta * tau))
        P_times_mix = torch.einsum("bij,bj->bi", P, mix)
    return torch.log_softmax((1 - eta * tau) * log_pi + eta * tau * log_mu + eta * P_times_mix, -1)


def extragradient_step(log_pi, log_mu, P, tau, eta, estimate=None):
    """Entropy-regularised extragradient (Cen, Wei, Chi 2021, arXiv 2105.15186, Alg. 1; EGPO):

    ``log pi_half = (1 - eta tau) log pi_t + eta tau log mu + eta P pi_t + c``,
    ``log pi_{t+1} = (1 - eta tau) log pi_t + eta tau log mu + eta P pi_half + c``.
    ``estimate(log_q)`` replaces the exact ``P @ q`` (sampled form).
    """
    estimate = estimate or (lambda log_q: torch.einsum("bij,bj->bi", P, torch.exp(log_q)))
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
        est = lambda log_q: _estimate_P_times(state.P, log_q, cfg, state.generator)  # noqa: E731
        if cfg.name == "nash_md":
            mix = sampling_log_policy(state.theta, state.log_mu, eta * cfg.tau)
            state.theta = nash_md_step(state.theta, state.log_mu, state.P, cfg.tau, eta, est(mix))
        else:
            state.theta = extragradient_step(state.theta, state.log_mu, state.P, cfg.tau, eta, est)
    else:
        log_q = sampling_log_policy(state.theta, state.log_mu, cfg.effective_beta)
        if cfg.kind == "pairwise":
            loss_name = ALGORITHMS[cfg.name][1]
            if cfg.sampled:
                loss = sampled_pairwise_loss(state.theta, state.log_mu, state.P, cfg.tau, loss_name,
                                             log_q, cfg.batch, cfg.label_type, state.generator)
            else:
                loss = population_pairwise_loss(state.theta, state.log_mu, state.P, cfg.tau,
                                                loss_name, log_q, cfg.label_type)
        elif cfg.sampled:
            loss = sampled_pg_loss(cfg, state.theta, state.log_mu, state.P, state.generator,
                                   state.scores)
        else:
            loss = exact_pg_loss(cfg, state.theta, state.log_mu, state.P, state.scores)
        state.optimizer.zero_grad()
        loss.sum().backward()  # games are independent: the sum gives each its own gradient
        state.optimizer.step()
        state.last_loss = loss.detach()
    state.t += 1
    return state


def limit_point(cfg: AlgorithmConfig, P, mu, scores=None):
    """The known limit of an algorithm on one game (an :class:`~tabular.solvers.Equilibrium`),
    or None where theory gives none (online DPO / SLiC, offline DPO / SLiC, rl without scores).

    online_ipo, self_play, nash_md with decaying step, extragradient: ``pi*``. ipo_md and
    nash_md_pg(beta): ``pi ∝ mu exp(P mix_beta(pi) / tau)`` (SPEC Eq. 13). offline_ipo: beta = 1.
    nash_md with constant eta: beta = eta tau (SPEC §5.5). rl: ``mu exp(s / tau)`` normalised
    (``residual`` 0, ``gap`` its duality gap in the game P). With hard labels every limit is that of
    the game ``1[P > 1/2]`` (:func:`label_matrix`), which is what the updates then follow.
    """
    from .solvers import Equilibrium, duality_gap, mixture_fixed_point, solve_equilibrium

    P, mu = validate_game(P, mu)
    if cfg.label_type == "hard":
        P = label_matrix(torch.as_tensor(P), "hard").numpy()
    name = cfg.name
    if name == "rl":
        if scores is None:
            return None
        log_pi = np.log(mu) + np.asarray(scores, np.float64) / cfg.tau
        log_pi = log_pi - np.logaddexp.reduce(log_pi)
        pi = np.exp(log_pi)
        return Equilibrium(pi, log_pi, cfg.tau, float(duality_gap(P, mu, cfg.tau, pi)), 0.0, 0,
                           True, "rlhf-closed-form", "mu exp(s / tau), normalised")
    if name in ("online_ipo", "self_play", "extragradient") or (name == "nash_md" and cfg.eta is None):
        return solve_equilibrium(P, mu, cfg.tau)
    if name in ("ipo_md", "nash_md_pg", "offline_ipo"):
        return mixture_fixed_point(P, mu, cfg.tau, cfg.effective_beta)
    if name == "nash_md":
        return mixture_fixed_point(P, mu, cfg.tau, cfg.eta * cfg.tau)
    return None


# --------------------------------------------------------------------------------------------
@dataclass
class RunResult:
    """Recorded metrics: ``steps`` (K,), ``metrics[name]`` (K, B), ``log_pi`` (K, B, n) at the
    recorded steps, final policies (B, n)."""

    config: dict
    steps: np.ndarray
    metrics: dict[str, np.ndarray]
    final_pi: np.ndarray
    final_log_pi: np.ndarray
    pi_star: np.ndarray
    log_pi: np.ndarray
    extra: dict = field(default_factory=dict)


def run(cfg: AlgorithmConfig, P, mu=None, *, steps: int = 1000, seed: int = 0,
        record_every: int = 10, record_at=None, scores=None, init="mu", pi_star=None,
        progress=None) -> RunResult:
    """Run ``steps`` iterations on a batch of games, recording metrics every ``record_every``.

    ``record_at`` (an iterable of iterations, 0 = the start) replaces the ``record_every`` grid
    (e.g. log-spaced steps for plots). ``init`` as in :func:`make_state`. ``pi_star`` (B, n)
    defaults to :func:`tabular.solvers.solve_equilibrium` on the stack (per-game certificates). ``progress`` is an optional
    callable ``progress(n_steps_done)`` (e.g. a tqdm ``update``).
    Metrics (see :mod:`tabular.metrics`): ``kl_to_opt`` = KL(pi* || pi_t), ``gap``,
    ``winrate_vs_mu``, ``kl_to_ref`` = KL(pi_t || mu), ``loss`` (gradient methods: the step's loss).
    """
    from .metrics import policy_metrics
    from .solvers import solve_equilibrium

    for name, value, least in (("steps", steps, 0), ("record_every", record_every, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    state = make_state(cfg, P, mu, scores=scores, seed=seed, init=init)
    P_np = state.P.numpy()
    mu_np = torch.exp(state.log_mu).numpy()
    if pi_star is None:
        pi_star = solve_equilibrium(P_np, mu_np, cfg.tau).pi  # batched: one Newton over the stack
    pi_star = np.broadcast_to(np.asarray(pi_star, np.float64), mu_np.shape)

    if record_at is None:
        record_at = set(range(0, steps + 1, record_every)) | {steps}
    else:
        record_at = {int(t) for t in record_at}
    recorded_steps, recorded_log_pi, rows = [], [], []

    def record():
        log_pi = state.log_pi.numpy().copy()
        m = policy_metrics(P_np, mu_np, cfg.tau, log_pi, pi_star)
        m["loss"] = state.last_loss.numpy() if state.last_loss is not None else np.full(log_pi.shape[0], np.nan)
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
                     np.stack(recorded_log_pi) if recorded_log_pi else np.empty((0,) + log_pi.shape))
