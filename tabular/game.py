"""Preference games: validation, policy helpers and the game families.

A game is a preference matrix ``P`` (n x n, ``P[y, y']`` = probability that ``y`` is preferred to
``y'``; ``0 <= P <= 1`` and ``P + P.T = 1``) and a reference policy ``mu`` (full support). Every
public entry point validates once, here, with :func:`validate_game`; hot functions elsewhere trust
their inputs. All arrays are float64 and may carry leading batch axes (``P`` of shape (..., n, n),
policies of shape (..., n)).

Families (each returns ``P`` as an (n, n) float64 array; seeds make them reproducible):

- :func:`bradley_terry` / :func:`bradley_terry_random`: ``P = sigmoid(s_y - s_y')`` (transitive).
- :func:`cyclic`: ``P[y, y+k mod n] = 1/2 + strength`` for ``k = 1..floor((n-1)/2)``; n = 3 is
  rock-paper-scissors.
- :func:`perturbed_rps`: ``P = (A + 3) / 6`` with ``A = [[0,-3,3],[3,0,-1],[-3,1,0]]``; solving
  ``A pi = 0`` by hand gives its (tau = 0) equilibrium (1, 3, 3) / 7.
- :func:`biased_rps`: ``P = 1/2 + B`` with OpenSpiel's biased RPS payoff
  ``B = [[0,-.25,.5],[.25,0,-.05],[-.5,.05,0]]``, equilibrium (1, 10, 5) / 16 (OpenSpiel
  ``lp_solver_test.py``).
- :func:`random_game`: lower triangle ``U(0, 1)``, upper triangle ``1 - P.T`` (EGPO style).
- :func:`annotator_majority`: probability that a majority of several Bradley-Terry annotators
  prefers ``y`` (intransitive in general).
- :func:`load_matrix`: ``.npy``, ``.csv`` or ``.json``.
- :func:`make_game`: parses ``FAMILY[:ARGS]`` strings used by the CLI into a :class:`Game`
  ``(P, scores)``.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy.special import expit, log_softmax

__all__ = [
    "SYMMETRY_TOL",
    "validate_game",
    "validate_preference",
    "preference_shape",
    "validate_reference",
    "validate_tau",
    "validate_beta",
    "validate_eta",
    "validate_seed",
    "check_allocation",
    "MAX_SEED",
    "MAX_ACTIONS",
    "uniform",
    "softmax",
    "kl_log",
    "mixture_policy",
    "log_mixture_policy",
    "win_rate",
    "bradley_terry",
    "bradley_terry_random",
    "cyclic",
    "rock_paper_scissors",
    "perturbed_rps",
    "biased_rps",
    "random_game",
    "annotator_majority",
    "intransitive_blend",
    "load_matrix",
    "load_vector",
    "make_game",
    "Game",
    "GAME_FAMILIES",
]

SYMMETRY_TOL = 1e-12  # |P + P.T - 1| and |sum(mu) - 1| tolerance (float64 round-off of inputs)
MAX_SEED = 2**63 - 1  # numpy's default_rng takes seeds >= 0; torch's manual_seed a signed 64-bit one
MAX_ACTIONS = 4096  # a dense (n, n) float64 game: 128 MiB, and O(n^3) per Newton step of the solver
MEMORY_LIMIT = 2**31  # bytes a game family or a run may allocate before we refuse it (one line)


# --------------------------------------------------------------------------------------------
# Validation: one routine, used wherever a game enters the package.
# --------------------------------------------------------------------------------------------
def preference_shape(P) -> np.ndarray:
    """Return ``P`` as float64 after checking its shape (..., n, n), n >= 2: the O(n^2) checks of
    :func:`validate_preference` left out (for a matrix already validated, e.g. the solver's
    ``check_game=False``)."""
    P = np.asarray(P, dtype=np.float64)
    if P.ndim < 2 or P.shape[-1] != P.shape[-2]:
        raise ValueError(f"P must be a square matrix (..., n, n), got shape {P.shape}")
    if P.shape[-1] < 2:
        raise ValueError(f"P must have at least 2 actions, got n = {P.shape[-1]}")
    return P


def validate_preference(P) -> np.ndarray:
    """Return ``P`` as float64 after checking shape (..., n, n), finiteness, range and P + P.T = 1."""
    P = preference_shape(P)
    low, high, asym = _range_and_asymmetry(P)
    if not (math.isfinite(low) and math.isfinite(high)):  # min and max propagate nan and inf
        raise ValueError("P has non-finite entries (nan or inf)")
    if low < 0.0 or high > 1.0:
        raise ValueError(f"P entries must lie in [0, 1], got range [{low:.6g}, {high:.6g}]")
    if asym > SYMMETRY_TOL:
        raise ValueError(f"P + P.T must equal 1 (within {SYMMETRY_TOL:g}); max deviation {asym:.3g}")
    return P


def _range_and_asymmetry(P, tile: int = 128) -> tuple[float, float, float]:
    """``(min P, max P, max |P + P^T - 1|)`` in one pass over ``P`` (..., n, n), tile pair by tile
    pair: ``P + swapaxes(P)`` over the whole matrix reads P transposed, which measured 109 ms
    at n = 3000 (40 products ``P @ pi``); cache-sized tiles read it once (12-19 ms)."""
    n = P.shape[-1]
    if n <= 2 * tile:  # one tile: fewer calls (measured 2x faster at n = 200)
        tile = n
    lows, highs, asym = [], [], 0.0
    for i in range(0, n, tile):
        for j in range(i, n, tile):
            A, B = P[..., i:i + tile, j:j + tile], P[..., j:j + tile, i:i + tile]
            with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: reported as non-finite
                D = A + np.swapaxes(B, -1, -2)
            # A diagonal tile is its own partner: its range once (a third less work at n = 200)
            lows += [A.min()] if i == j else [A.min(), B.min()]
            highs += [A.max()] if i == j else [A.max(), B.max()]
            asym = max(asym, float(D.max()) - 1.0, 1.0 - float(D.min()))
    # np.min / np.max (not Python's min) so that a nan anywhere comes out as nan
    return float(np.min(lows)), float(np.max(highs)), asym


def validate_reference(mu, n: int | None = None) -> np.ndarray:
    """Return ``mu`` as float64 after checking finiteness, full support and normalisation."""
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim < 1:
        raise ValueError(f"mu must be a probability vector, got a scalar {mu!r}")
    if n is not None and mu.shape[-1] != n:
        raise ValueError(f"mu has {mu.shape[-1]} entries but P has {n} actions")
    if not np.all(np.isfinite(mu)):
        raise ValueError("mu has non-finite entries (nan or inf)")
    if mu.min() <= 0.0:
        raise ValueError(f"mu must have full support (all entries > 0), min is {mu.min():.6g}")
    dev = np.abs(mu.sum(-1) - 1.0).max()
    if dev > SYMMETRY_TOL:
        raise ValueError(f"mu must sum to 1 (within {SYMMETRY_TOL:g}); deviation {dev:.3g}")
    return mu


def validate_game(P, mu=None) -> tuple[np.ndarray, np.ndarray]:
    """Validate a game; ``mu`` defaults to uniform. Returns float64 ``(P, mu)``."""
    P = validate_preference(P)
    n = P.shape[-1]
    mu = uniform(n) if mu is None else validate_reference(mu, n)
    return P, mu


def validate_tau(tau, allow_zero: bool = False) -> float:
    """``tau > 0`` (or ``tau == 0`` where the zero-sum LP applies)."""
    try:
        tau = float(tau)
    except (TypeError, ValueError):
        raise ValueError(f"tau must be a number, got {tau!r}") from None
    if not math.isfinite(tau) or tau < 0 or (tau == 0 and not allow_zero):
        need = "tau >= 0" if allow_zero else "tau > 0"
        raise ValueError(f"{need} required, got tau = {tau!r}")
    return tau


def validate_beta(beta) -> float:
    """``beta`` in [0, 1]."""
    try:
        beta = float(beta)
    except (TypeError, ValueError):
        raise ValueError(f"beta must be a number, got {beta!r}") from None
    if not (0.0 <= beta <= 1.0):
        raise ValueError(f"beta must lie in [0, 1], got beta = {beta!r}")
    return beta


def validate_eta(eta) -> float:
    """``eta > 0``."""
    try:
        eta = float(eta)
    except (TypeError, ValueError):
        raise ValueError(f"eta must be a number, got {eta!r}") from None
    if not math.isfinite(eta) or eta <= 0:
        raise ValueError(f"eta > 0 required, got eta = {eta!r}")
    return eta


def validate_seed(seed, name: str = "seed", maximum: int = MAX_SEED) -> int:
    """An integer seed in ``[0, maximum]`` (what numpy's ``default_rng`` and torch both accept)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {seed!r}")
    if not 0 <= seed <= maximum:
        raise ValueError(f"{name} must lie in [0, {maximum}], got {seed}")
    return int(seed)


def check_allocation(nbytes: float, what: str) -> None:
    """Refuse (one line) an input that would allocate more than :data:`MEMORY_LIMIT` bytes, rather
    than failing with a MemoryError (or the OOM killer) half-way."""
    if nbytes > MEMORY_LIMIT:
        raise ValueError(f"{what} needs about {nbytes / 2**30:.3g} GiB of memory "
                         f"(limit {MEMORY_LIMIT / 2**30:g} GiB)")


# --------------------------------------------------------------------------------------------
# Policy helpers (float64, batched over leading axes).
# --------------------------------------------------------------------------------------------
def uniform(n: int) -> np.ndarray:
    return np.full(n, 1.0 / n)


def softmax(logits) -> np.ndarray:
    return np.exp(log_softmax(np.asarray(logits, dtype=np.float64), axis=-1))


def kl_log(log_p, log_q, p=None) -> np.ndarray:
    """KL(p || q) over the last axis from log-probabilities, with 0 log 0 = 0 (exact where p or q
    underflow). ``p``: pass it when you hold it (else ``exp(log_p)``)."""
    p = np.exp(log_p) if p is None else np.asarray(p, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        terms = np.where(p > 0, p * (np.asarray(log_p) - np.asarray(log_q)), 0.0)
    return terms.sum(-1)


def log_mixture_policy(log_pi, log_mu, beta: float) -> np.ndarray:
    """log of ``mix_beta(pi) ∝ pi^(1-beta) mu^beta`` (SPEC §1), normalised."""
    return log_softmax((1.0 - beta) * np.asarray(log_pi) + beta * np.asarray(log_mu), axis=-1)


def mixture_policy(pi, mu, beta: float) -> np.ndarray:
    """Geometric mixture ``mix_beta(pi)(y) ∝ pi(y)^(1-beta) mu(y)^beta`` (the "regularised policy")."""
    with np.errstate(divide="ignore"):
        return np.exp(log_mixture_policy(np.log(pi), np.log(mu), beta))


def win_rate(P, pi, pi_prime) -> np.ndarray:
    """``P(pi > pi') = pi @ P @ pi'``."""
    return np.einsum("...i,...ij,...j->...", pi, P, pi_prime)


# --------------------------------------------------------------------------------------------
# Families.
# --------------------------------------------------------------------------------------------
def _skew_to_preference(A: np.ndarray) -> np.ndarray:
    # Symmetrise exactly so that P + P.T == 1 holds to the last bit (round-off in A would not).
    A = 0.5 * (A - np.swapaxes(A, -1, -2))
    return 0.5 + A


def bradley_terry(scores) -> np.ndarray:
    """``P[y, y'] = sigmoid(s_y - s_y')``: transitive preferences from scalar scores."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.size < 2 or not np.all(np.isfinite(s)):
        raise ValueError("bradley_terry needs a finite 1-d vector of at least 2 scores")
    d = s[:, None] - s[None, :]
    # expit(d) - 1/2 is odd in d; build from the skew part so P + P.T = 1 exactly.
    return _skew_to_preference(expit(d) - 0.5)


def bradley_terry_random(n: int, seed: int = 0, scale: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Bradley-Terry game with scores ``N(0, scale^2)``; returns ``(P, scores)``."""
    scores = np.random.default_rng(seed).normal(0.0, scale, size=n)
    return bradley_terry(scores), scores


def cyclic(n: int = 3, strength: float = 0.5) -> np.ndarray:
    """Cyclic preferences: ``y`` beats the next ``floor((n-1)/2)`` actions with prob 1/2 + strength."""
    if n < 3:
        raise ValueError(f"cyclic needs n >= 3, got {n}")
    if not (0.0 <= strength <= 0.5):
        raise ValueError(f"cyclic strength must lie in [0, 1/2], got {strength}")
    A = np.zeros((n, n))
    for k in range(1, (n - 1) // 2 + 1):
        idx = np.arange(n)
        A[idx, (idx + k) % n] += strength
        A[(idx + k) % n, idx] -= strength
    return _skew_to_preference(A)


def rock_paper_scissors() -> np.ndarray:
    """Deterministic rock-paper-scissors (cyclic with n = 3, strength 1/2)."""
    return cyclic(3, 0.5)


def perturbed_rps() -> np.ndarray:
    """``P = (A + 3) / 6``, ``A = [[0,-3,3],[3,0,-1],[-3,1,0]]``; Nash at tau=0 is (1, 3, 3)/7.

    (Rows of ``A pi = 0``: ``-3 p1 + 3 p2 = 0`` and ``3 p0 - p2 = 0``.)
    """
    A = np.array([[0.0, -3.0, 3.0], [3.0, 0.0, -1.0], [-3.0, 1.0, 0.0]])
    return _skew_to_preference(A / 6.0)


def biased_rps() -> np.ndarray:
    """OpenSpiel's biased rock-paper-scissors, ``P = 1/2 + B``; Nash at tau=0 is (1, 10, 5)/16."""
    B = np.array([[0.0, -0.25, 0.5], [0.25, 0.0, -0.05], [-0.5, 0.05, 0.0]])
    return _skew_to_preference(B)


def random_game(n: int, seed: int = 0) -> np.ndarray:
    """Lower triangle ``U(0, 1)``, diagonal 1/2, upper triangle ``1 - P.T`` (EGPO's random games)."""
    rng = np.random.default_rng(seed)
    L = np.tril(rng.uniform(0.0, 1.0, size=(n, n)), -1)
    A = L - 0.5 * np.tril(np.ones((n, n)), -1)
    return _skew_to_preference(A - A.T)


def annotator_majority(n: int, annotators: int = 3, seed: int = 0, scale: float = 3.0) -> np.ndarray:
    """Majority vote of ``annotators`` (odd) independent Bradley-Terry raters with random scores.

    ``P[y, y']`` = probability that more than half of the raters prefer ``y``, each rater ``k``
    preferring ``y`` with probability ``sigmoid(s_k(y) - s_k(y'))``. Intransitive in general
    (Condorcet cycles).
    """
    if annotators < 1 or annotators % 2 == 0:
        raise ValueError(f"annotators must be a positive odd number, got {annotators}")
    scores = np.random.default_rng(seed).normal(0.0, scale, size=(annotators, n))
    q = expit(scores[:, :, None] - scores[:, None, :])  # (K, n, n) per-rater preferences
    # Poisson-binomial distribution of the number of raters preferring y, by dynamic programming.
    dist = np.zeros((annotators + 1, n, n))
    dist[0] = 1.0
    for k in range(annotators):
        dist[1:] = dist[1:] * (1 - q[k]) + dist[:-1] * q[k]
        dist[0] = dist[0] * (1 - q[k])
    P = dist[annotators // 2 + 1 :].sum(0)
    return _skew_to_preference(P - 0.5)


def intransitive_blend(n: int, alpha: float, seed: int = 0) -> np.ndarray:
    """``(1 - alpha) * BT + alpha * cyclic``: Bradley-Terry at alpha = 0, strongly cyclic at 1."""
    if not (0.0 <= alpha <= 1.0):
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    P_bt, _ = bradley_terry_random(n, seed)
    return _skew_to_preference((1 - alpha) * (P_bt - 0.5) + alpha * (cyclic(n) - 0.5))


def _json_numbers(data):
    """The nested lists of numbers a JSON file may hold, as float64 (nothing else is a matrix)."""
    if isinstance(data, dict):
        key = next((k for k in ("P", "matrix", "mu", "pi") if k in data), None)
        if key is None:
            raise ValueError("JSON object must hold a key 'P', 'matrix', 'mu' or 'pi'")
        data = data[key]
    if not isinstance(data, list):
        raise ValueError(f"expected a list of numbers, got a JSON {type(data).__name__}")
    arr = np.asarray(data, dtype=object)
    if arr.dtype != object or arr.ndim > 2 or any(isinstance(v, (bool, dict, list, str)) or v is None
                                                 for v in arr.ravel()):
        raise ValueError("expected a vector or a matrix of numbers")
    # float(int) raises OverflowError for integers beyond float64's range (~1.8e308).
    return np.array([float(v) for v in arr.ravel()], dtype=np.float64).reshape(arr.shape)


def _load_array(path) -> np.ndarray:
    """A real vector or matrix from ``.npy``, ``.csv`` or ``.json``; one-line ``ValueError`` for
    anything else (missing, empty, complex, structured, ragged, nested too deep, not numbers)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
            if arr.dtype.kind not in "biuf":  # complex would be cast to real silently
                raise ValueError(f"expected real numbers, got dtype {arr.dtype}")
        elif suffix == ".csv":
            with warnings.catch_warnings():  # numpy warns on an empty file; we say it in one line
                warnings.simplefilter("ignore")
                arr = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=1)
        elif suffix == ".json":
            with open(path) as f:
                arr = _json_numbers(json.load(f))
        else:
            raise ValueError(f"unsupported file type {suffix!r} (use .npy, .csv or .json)")
    except (ValueError, TypeError, OverflowError, OSError, EOFError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"cannot read {path}: {reason}") from None
    except RecursionError:
        raise ValueError(f"cannot read {path}: JSON nested too deeply") from None
    if arr.size == 0:
        raise ValueError(f"cannot read {path}: it holds no numbers")
    return np.asarray(arr, dtype=np.float64)


def load_matrix(path) -> np.ndarray:
    """Load and validate a preference matrix from ``.npy``, ``.csv`` or ``.json``."""
    P = _load_array(path)
    try:
        return validate_preference(P)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def load_vector(path, n: int | None = None) -> np.ndarray:
    """Load and validate a reference policy ``mu`` from ``.npy``, ``.csv`` or ``.json``."""
    mu = _load_array(path)
    if mu.ndim != 1:
        raise ValueError(f"{path}: mu must be a vector, got an array of shape {mu.shape}")
    try:
        return validate_reference(mu, n)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


SEED_ARG = object()  # a parameter default meaning "make_game's seed argument"


@dataclass(frozen=True)
class GameFamily:
    """One family of :func:`make_game`: its usage line (``--help``), its parameters in spec order
    as ``(parse, default)`` (``default`` :data:`SEED_ARG` for a seed, validated), and its builder.
    ``file`` takes the rest of the spec as one path (``rest=True``). Adding a family is one entry."""

    usage: str
    params: tuple = ()
    build: Callable[..., tuple] = None
    rest: bool = False


GAME_REGISTRY = {
    "bt": GameFamily("bt:N[:SEED] Bradley-Terry with N(0, 2^2) scores",
                     ((int, 5), (int, SEED_ARG)), bradley_terry_random),
    "cyclic": GameFamily("cyclic:N[:STRENGTH] cyclic preferences (n=3 is rock-paper-scissors)",
                         ((int, 3), (float, 0.5)), lambda n, strength: (cyclic(n, strength), None)),
    "rps": GameFamily("rps  rock-paper-scissors (3 actions)", (), lambda: (rock_paper_scissors(), None)),
    "perturbed_rps": GameFamily("perturbed_rps  P=(A+3)/6, Nash (1,3,3)/7 at tau=0", (),
                                lambda: (perturbed_rps(), None)),
    "biased_rps": GameFamily("biased_rps  OpenSpiel's biased RPS, Nash (1,10,5)/16 at tau=0", (),
                             lambda: (biased_rps(), None)),
    "random": GameFamily("random:N[:SEED] lower triangle U(0,1)", ((int, 5), (int, SEED_ARG)),
                         lambda n, s: (random_game(n, s), None)),
    "majority": GameFamily("majority:N[:ANNOTATORS[:SEED]] majority of Bradley-Terry annotators",
                           ((int, 5), (int, 3), (int, SEED_ARG)),
                           lambda n, k, s: (annotator_majority(n, k, s), None)),
    "blend": GameFamily("blend:N:ALPHA[:SEED] (1-alpha) BT + alpha cyclic",
                        ((int, 5), (float, 0.5), (int, SEED_ARG)),
                        lambda n, alpha, s: (intransitive_blend(n, alpha, s), None)),
    "file": GameFamily("file:PATH  a .npy/.csv/.json matrix", build=lambda path: (load_matrix(path), None),
                       rest=True),
}
GAME_FAMILIES = {name: f.usage for name, f in GAME_REGISTRY.items()}  # family -> usage line


def _check_size(spec: str, name: str, args: list) -> None:
    """``N`` in [2, MAX_ACTIONS] and the family's arrays within MEMORY_LIMIT (a family with a
    larger minimum, cyclic's 3, says so itself)."""
    try:
        n = int(args[0])
    except ValueError:
        return  # not a number: make_game reports it
    if not 2 <= n <= MAX_ACTIONS and not (name == "cyclic" and n == 2):
        raise ValueError(f"bad game spec {spec!r}: N must lie in [2, {MAX_ACTIONS}], got {n}")
    if name == "majority" and len(args) > 1 and str(args[1]).isdigit():
        # (K+1) Poisson-binomial layers and K per-rater matrices of size n x n
        check_allocation((2 * int(args[1]) + 1) * n * n * 8.0, f"game {spec!r}")


class Game(NamedTuple):
    """A game built by :func:`make_game`: ``P`` (n, n) and the Bradley-Terry ``scores`` (n,) of a
    ``bt`` game (None for every other family). Unpacks as ``P, scores = make_game(spec)``."""

    P: np.ndarray
    scores: np.ndarray | None


def make_game(spec: str, seed: int = 0) -> Game:
    """Build ``P`` from ``FAMILY[:ARGS]``; returns a :class:`Game` (scores only for ``bt``).

    ``seed`` is used when the spec gives none.
    """
    name, *args = spec.split(":")
    family = GAME_REGISTRY.get(name)
    if family is None:
        raise ValueError(f"unknown game family {name!r}; choose from {', '.join(GAME_REGISTRY)}")
    if not family.rest and len(args) > len(family.params):
        raise ValueError(f"bad game spec {spec!r}: {family.usage.split(' ')[0]} takes at most "
                         f"{len(family.params)} argument(s)")
    if not family.rest and args:
        _check_size(spec, name, args)
    try:
        if family.rest:
            if not args:
                raise ValueError(f"{name}: needs a path, e.g. {name}:P.npy")
            return Game(*family.build(":".join(args)))
        values = []
        for i, (parse, default) in enumerate(family.params):
            if default is SEED_ARG:
                values.append(validate_seed(parse(args[i]) if len(args) > i else seed))
            else:
                values.append(parse(args[i]) if len(args) > i else default)
        return Game(*family.build(*values))
    except (IndexError, TypeError) as e:
        raise ValueError(f"bad game spec {spec!r}: {e}") from None
    except ValueError as e:
        msg = str(e)
        if "invalid literal" in msg or "could not convert" in msg:
            raise ValueError(f"bad game spec {spec!r}: arguments must be numbers") from None
        raise

