"""Exact per-prompt targets and exact evaluation of a policy on the enumerable task.

Each prompt ``x`` of :class:`llm.enumerable.EnumerableTask` is a tabular game ``(P_x, mu_x)`` with
``mu_x`` the SFT transformer's exact law. :func:`targets` solves, for a batch of prompts at once,
the point each method should reach (all through :mod:`tabular`, with certificates):

| target      | methods               | definition                                                        |
|-------------|-----------------------|-------------------------------------------------------------------|
| ``nash``    | online_ipo, self_play | ``pi* ∝ mu exp(P pi* / tau)`` (:func:`tabular.solve_equilibrium`) |
| ``seq_mix`` | (the paper's Eq. 13)  | ``pi ∝ mu exp(P mix_beta(pi) / tau)``, sequence-level mixture     |
| ``tok_mix`` | ipo_md, nash_md_pg    | the same with the **per-token** mixture the llm samples from      |
| ``rlhf``    | rl                    | ``mu exp(r / (4 tau))`` normalised, ``r`` the HodgeRank BT reward |
| ``dpo``     | online_dpo            | the stationary point of its population loss                       |
|             |                       | (:func:`tabular.pairwise_limits.online_dpo_limit`)                |

``seq_mix`` comes from Prop. 5.2 (``mix_beta`` of it is the equilibrium at ``tau / (1 - beta)``);
``tok_mix`` has no such shortcut: it is the fixed point of ``T(pi) = softmax(log mu + P m(pi) / tau)``
with ``m(pi)`` the per-token mixture law (:func:`llm.enumerable.per_token_mixture`), iterated in
float64 from ``seq_mix`` until its log-space residual is at round-off; its residual is its
certificate. Online DPO has no closed-form limit (SPEC §5.6): ``dpo`` solves its stationarity
``sum_y pi(y) [sigmoid(tau (rho_a - rho_y)) - P(a, y)] = 0`` by Newton in log space, certified by that
residual. Online SLiC has no point limit (its hinge makes the stationarity piecewise constant): it is
measured against ``nash`` (how far it lands from pi*).

:func:`policy_metrics` evaluates any exact law against these targets: KL both ways, the duality
gap in the tau-game, exploitability at tau = 0, and exact win rates ``pi^T P pi'``.
"""

from __future__ import annotations

import warnings

import numpy as np

from tabular import duality_gap, exploitability, solve_equilibrium
from tabular.fixed_point import log_normalise_logaddexp
from tabular.pairwise_limits import online_dpo_limit

from .enumerable import per_token_mixture

__all__ = ["targets", "token_mixture_fixed_point", "policy_metrics", "kl", "win_rate", "rlhf_target",
           "TARGET_OF", "NO_POINT_LIMIT", "pairwise_stationarity"]

# which exact target each method of the experiment should reach
TARGET_OF = {"online_ipo": "nash", "self_play": "nash", "ipo_md": "tok_mix", "nash_md_pg": "tok_mix",
             "rl": "rlhf", "online_dpo": "dpo", "online_slic": "nash"}
# methods whose TARGET_OF is a reference point, not a limit theory predicts for them
NO_POINT_LIMIT = ("online_slic",)


def kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(B,) ``KL(p || q)`` of laws (B, n); 0 log 0 = 0, summed as ``p (d + expm1(-d))`` (every term
    >= 0, so a law equal to its target gives 0 up to round-off squared, never a negative KL)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.log(p) - np.log(q)
        terms = np.where(p > 0, p * (d + np.expm1(-d)), q)
    return terms.sum(-1)


def win_rate(P: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(B,) exact ``sum_y,y' a(y) b(y') P(y, y')``."""
    return np.einsum("bi,bij,bj->b", a, P, b)


def rlhf_target(mu: np.ndarray, reward: np.ndarray, tau: float) -> np.ndarray:
    """``mu exp(reward / tau)`` normalised (B, n): the KL-regularised reward maximiser."""
    return np.exp(log_normalise_logaddexp(np.log(mu) + reward / tau))


def token_mixture_fixed_point(P, mu, tau: float, beta: float, space, init=None, tol: float = 1e-12,
                              max_iter: int = 500, memory: int = 8):
    """Fixed point of ``pi ∝ mu exp(P m_beta(pi) / tau)``, ``m_beta`` the per-token mixture law.

    Anderson-accelerated iteration (type II, ``memory`` past steps, per prompt) of
    ``z <- log T(exp z)`` in normalised log space: plain iteration oscillates once the judge's
    logits are large (rho >= 1 at tau = 0.1), Anderson's multisecant step does not. Returns
    (pi (B, n), residual (B,) = max |log pi - log T(pi)|, iterations).
    """
    log_mu = np.log(mu)

    def T(z):
        m = per_token_mixture(np.exp(z), mu, beta, space)
        return log_normalise_logaddexp(log_mu + np.matmul(P, m[..., None])[..., 0] / tau)

    z = np.log(mu if init is None else init)
    g = T(z) - z  # (B, n) residual of the map
    res = np.abs(g).max(-1)
    best_z, best_res = z.copy(), res.copy()
    dZ, dG = [], []
    it = 0
    while it < max_iter and best_res.max() > tol:
        it += 1
        if dZ:
            Zm, Gm = np.stack(dZ, -1), np.stack(dG, -1)  # (B, n, m)
            # least-squares gamma = argmin |g - dG gamma| per prompt (ridge 1e-14 for stability)
            A = np.einsum("bnm,bnk->bmk", Gm, Gm) + 1e-14 * np.eye(Gm.shape[-1])
            gamma = np.linalg.solve(A, np.einsum("bnm,bn->bm", Gm, g)[..., None])[..., 0]
            z_new = z + g - np.einsum("bnm,bm->bn", Zm + Gm, gamma)
        else:
            z_new = z + g
        z_new = log_normalise_logaddexp(z_new)
        g_new = T(z_new) - z_new
        dZ.append(z_new - z)
        dG.append(g_new - g)
        if len(dZ) > memory:
            dZ.pop(0), dG.pop(0)
        z, g = z_new, g_new
        res = np.abs(g).max(-1)
        better = res < best_res
        best_z[better], best_res[better] = z[better], res[better]
    return np.exp(best_z), best_res, it


def targets(P: np.ndarray, mu: np.ndarray, tau: float, beta: float, reward: np.ndarray, space) -> dict:
    """Every exact target for a batch of prompt games (see the module table).

    Args: P (B, n, n), mu (B, n) (the SFT laws), tau > 0, beta in (0, 1), reward (B, n) the
    HodgeRank reward (RL's reward is ``reward / 4``), space the response space.
    Returns: {"laws": {name: (B, n)}, "certificates": {name: (B,) gap or residual}, ...}.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a target that misses its certificate is an error here
        nash = solve_equilibrium(P, mu, tau)
        mix_eq = solve_equilibrium(P, mu, tau / (1 - beta))
    seq = np.exp(log_normalise_logaddexp(np.log(mu) + np.matmul(P, mix_eq.pi[..., None])[..., 0] / tau))
    tok, tok_res, tok_iters = token_mixture_fixed_point(P, mu, tau, beta, space, init=seq)
    if tok_res.max() > 1e-10:
        raise RuntimeError(f"the per-token mixture fixed point reached residual {tok_res.max():.3g} only")
    rlhf = rlhf_target(mu, reward / 4.0, tau)
    dpo = online_dpo_limit(P, mu, tau)
    if not dpo.converged.all():
        raise RuntimeError(f"online DPO's stationary point reached residual {dpo.residual.max():.3g} only")
    seq_m = np.exp(log_normalise_logaddexp((1 - beta) * np.log(seq) + beta * np.log(mu)))
    seq_T = log_normalise_logaddexp(np.log(mu) + np.matmul(P, seq_m[..., None])[..., 0] / tau)
    seq_res = np.abs(np.log(seq) - seq_T).max(-1)
    return {"laws": {"nash": nash.pi, "seq_mix": seq, "tok_mix": tok, "rlhf": rlhf, "dpo": dpo.pi},
            "certificates": {"nash_gap": nash.gap, "seq_mix_residual": seq_res, "tok_mix_residual": tok_res,
                             "mix_equilibrium_gap": mix_eq.gap, "dpo_residual": dpo.residual},
            "tok_mix_iterations": tok_iters}


def policy_metrics(law: np.ndarray, P: np.ndarray, mu: np.ndarray, tau: float, tgt: dict) -> dict:
    """Exact metrics of a policy's law (B, n) on prompt games (P, mu): per prompt (B,) arrays.

    ``kl_to/{t}`` = KL(pi || target t), ``kl_from/{t}`` = KL(target || pi), ``gap`` = duality gap in the
    tau-game, ``exploitability`` at tau = 0, ``win_vs/{t}`` = exact win rate against target t and
    against the SFT law (``win_vs/sft``), ``kl_to_sft`` = KL(pi || mu).
    """
    law = law / law.sum(-1, keepdims=True)  # float32 forward: renormalise the last ulp
    out = {"gap": duality_gap(P, mu, tau, law), "exploitability": exploitability(P, law),
           "kl_to_sft": kl(law, mu), "win_vs/sft": win_rate(P, law, mu)}
    for name, t in tgt["laws"].items():
        out[f"kl_to/{name}"] = kl(law, t)
        out[f"kl_from/{name}"] = kl(t, law)
        out[f"win_vs/{name}"] = win_rate(P, law, t)
    return out


# -- online DPO / SLiC: stationarity (no closed-form limit, SPEC §5.6) --------------------------------
def pairwise_stationarity(P, pi, mu, tau: float, loss: str):
    """(B, n) gradient, in logit space, of the online pairwise population loss at ``pi`` with the
    pair drawn from ``pi`` itself (stop-gradient): ``sum_y,y' pi(y) pi(y') loss(h(y, y'), P(y, y'))``,
    ``h`` the margin of ``log pi - log mu``, the loss :func:`tabular.losses.pairwise_loss` (the shared
    definition). Zero exactly at a stationary point of online DPO / SLiC / IPO."""
    import torch

    from tabular.losses import pairwise_loss

    with np.errstate(divide="ignore"):
        z = torch.as_tensor(np.log(pi), dtype=torch.float64).requires_grad_(True)
    log_pi = torch.log_softmax(z, -1)
    q = torch.softmax(z, -1).detach()
    r = log_pi - torch.as_tensor(np.log(mu))
    h = r[:, :, None] - r[:, None, :]
    total = (q[:, :, None] * q[:, None, :] * pairwise_loss(loss, h, torch.as_tensor(P), tau)).sum()
    (g,) = torch.autograd.grad(total, z)
    return g.numpy()
