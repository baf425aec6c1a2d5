"""Games: validation (one ValueError per violation), families, loading."""

import itertools
import json
import math

import numpy as np
import pytest

from tabular.game import (
    annotator_majority,
    bradley_terry,
    load_matrix,
    load_vector,
    make_game,
    mixture_policy,
    validate_beta,
    validate_eta,
    validate_game,
    validate_tau,
)

FAMILY_SPECS = ["bt:6:3", "cyclic:5", "cyclic:4:0.3", "rps", "perturbed_rps", "biased_rps",
                "random:7:2", "majority:6:5:1", "blend:6:0.4"]


@pytest.mark.parametrize("spec", FAMILY_SPECS)
def test_family_is_a_valid_preference_matrix(spec):
    P = make_game(spec).P
    assert P.dtype == np.float64 and P.ndim == 2 and P.shape[0] == P.shape[1]
    assert np.all((0 <= P) & (P <= 1))
    assert np.array_equal(P + P.T, np.ones_like(P))  # exact, not within a tolerance
    assert np.all(np.diag(P) == 0.5)


def test_families_are_reproducible_and_seeded():
    assert np.array_equal(make_game("random:6:1").P, make_game("random:6:1").P)
    assert not np.array_equal(make_game("random:6:1").P, make_game("random:6:2").P)
    # The seed argument is used when the spec gives none.
    assert np.array_equal(make_game("bt:5", seed=4).P, make_game("bt:5:4").P)


def test_bradley_terry_by_hand():
    # scores (0, log 3): P[1, 0] = sigmoid(log 3) = 3 / (1 + 3) = 3/4.
    P = bradley_terry([0.0, math.log(3.0)])
    assert P[1, 0] == pytest.approx(0.75, abs=1e-15)
    assert P[0, 1] == pytest.approx(0.25, abs=1e-15)


def test_rock_paper_scissors_by_hand():
    P = make_game("rps").P
    # Each action beats the next one cyclically with probability 1.
    assert np.array_equal(P, [[0.5, 1.0, 0.0], [0.0, 0.5, 1.0], [1.0, 0.0, 0.5]])


def test_perturbed_rps_is_A_plus_3_over_6():
    A = np.array([[0, -3, 3], [3, 0, -1], [-3, 1, 0]], dtype=float)
    P = make_game("perturbed_rps").P
    np.testing.assert_allclose(P, (A + 3) / 6, atol=1e-16)


def test_annotator_majority_against_enumeration():
    """Majority of K raters by enumerating all 2^K vote patterns (independent of the DP)."""
    K, n, seed, scale = 5, 4, 7, 3.0
    P = annotator_majority(n, K, seed, scale)
    scores = np.random.default_rng(seed).normal(0.0, scale, size=(K, n))
    for y, y_prime in itertools.permutations(range(n), 2):
        q = 1 / (1 + np.exp(-(scores[:, y] - scores[:, y_prime])))
        total = 0.0
        for votes in itertools.product([0, 1], repeat=K):
            if sum(votes) > K // 2:
                total += np.prod([q[k] if v else 1 - q[k] for k, v in enumerate(votes)])
        assert P[y, y_prime] == pytest.approx(total, abs=1e-12)


def test_annotator_majority_is_intransitive_somewhere():
    # Three raters with rankings a>b>c, b>c>a, c>a>b (scaled up): the Condorcet cycle.
    found = False
    for seed in range(20):
        P = annotator_majority(4, 3, seed, scale=6.0)
        wins = P > 0.5
        for a, b, c in itertools.permutations(range(4), 3):
            if wins[a, b] and wins[b, c] and wins[c, a]:
                found = True
    assert found


def test_mixture_policy_by_hand():
    # pi = (1/2, 1/2), mu = (1/5, 4/5), beta = 1/2: mix ∝ sqrt(pi mu) ∝ (1, 2) -> (1/3, 2/3).
    np.testing.assert_allclose(mixture_policy([0.5, 0.5], [0.2, 0.8], 0.5), [1 / 3, 2 / 3],
                               atol=1e-15)


# ---------------------------------------------------------------------------------------------
# Invalid input: each violation is a ValueError naming it.
# ---------------------------------------------------------------------------------------------
GOOD_P = np.array([[0.5, 0.7], [0.3, 0.5]])

INVALID_GAMES = {
    "not square": (np.ones((2, 3)) / 2, None, "square"),
    "vector": (np.ones(3) / 2, None, "square"),
    "one action": (np.array([[0.5]]), None, "at least 2"),
    "nan": (np.array([[0.5, np.nan], [np.nan, 0.5]]), None, "non-finite"),
    "inf": (np.array([[0.5, np.inf], [-np.inf, 0.5]]), None, "non-finite"),
    "entry above 1": (np.array([[0.5, 1.5], [-0.5, 0.5]]), None, r"\[0, 1\]"),
    "P + P.T != 1": (np.array([[0.5, 0.7], [0.4, 0.5]]), None, "P \\+ P.T"),
    "diagonal != 1/2": (np.array([[0.6, 0.7], [0.3, 0.5]]), None, "P \\+ P.T"),
    "mu zero entry": (GOOD_P, [1.0, 0.0], "full support"),
    "mu negative": (GOOD_P, [1.5, -0.5], "full support"),
    "mu sums to 0.9": (GOOD_P, [0.45, 0.45], "sum to 1"),
    "mu wrong length": (GOOD_P, [0.2, 0.3, 0.5], "entries"),
    "mu nan": (GOOD_P, [np.nan, 0.5], "non-finite"),
    "mu scalar": (GOOD_P, 1.0, "probability vector"),
}


@pytest.mark.parametrize("name", INVALID_GAMES)
def test_invalid_game_raises_value_error(name):
    P, mu, match = INVALID_GAMES[name]
    with pytest.raises(ValueError, match=match):
        validate_game(P, mu)


def test_symmetry_tolerance_is_1e_12():
    P = GOOD_P.copy()
    P[0, 1] += 1e-13  # within round-off: accepted
    validate_game(P)
    P[0, 1] += 1e-11  # beyond: rejected
    with pytest.raises(ValueError, match="P \\+ P.T"):
        validate_game(P)


@pytest.mark.parametrize("tau", [0.0, -1.0, float("nan"), float("inf"), "abc", None])
def test_invalid_tau(tau):
    with pytest.raises(ValueError, match="tau"):
        validate_tau(tau)


def test_tau_zero_only_where_allowed():
    assert validate_tau(0.0, allow_zero=True) == 0.0
    with pytest.raises(ValueError):
        validate_tau(-1e-9, allow_zero=True)


@pytest.mark.parametrize("beta", [-0.01, 1.01, float("nan"), "x"])
def test_invalid_beta(beta):
    with pytest.raises(ValueError, match="beta"):
        validate_beta(beta)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_valid_beta(beta):
    assert validate_beta(beta) == beta


@pytest.mark.parametrize("eta", [0.0, -0.1, float("inf"), "x"])
def test_invalid_eta(eta):
    with pytest.raises(ValueError, match="eta"):
        validate_eta(eta)


@pytest.mark.parametrize("spec, match", [
    ("nosuch", "unknown game family"),
    ("bt:x", "numbers"),
    ("cyclic:2", "n >= 3"),
    ("cyclic:5:0.9", "strength"),
    ("majority:5:2", "odd"),
    ("blend:5:1.5", "alpha"),
    ("file:", "file not found|needs a path"),
    ("file:/nonexistent/P.npy", "file not found"),
])
def test_invalid_game_spec(spec, match):
    with pytest.raises(ValueError, match=match):
        make_game(spec)


# ---------------------------------------------------------------------------------------------
# Loading.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".npy", ".csv", ".json", "dict.json"])
def test_load_matrix_round_trip(tmp_path, suffix):
    P = make_game("random:4:0").P
    path = tmp_path / ("P" + suffix if suffix.startswith(".") else "P.json")
    if suffix == ".npy":
        np.save(path, P)
    elif suffix == ".csv":
        np.savetxt(path, P, delimiter=",", fmt="%.17g")
    elif suffix == ".json":
        path.write_text(json.dumps(P.tolist()))
    else:
        path.write_text(json.dumps({"P": P.tolist()}))
    np.testing.assert_array_equal(load_matrix(path), P)


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="file not found"):
        load_matrix(tmp_path / "missing.npy")
    (tmp_path / "P.txt").write_text("0.5")
    with pytest.raises(ValueError, match="unsupported"):
        load_matrix(tmp_path / "P.txt")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        load_matrix(tmp_path / "bad.json")
    (tmp_path / "asym.csv").write_text("0.5,0.9\n0.9,0.5\n")
    with pytest.raises(ValueError, match="P \\+ P.T"):
        load_matrix(tmp_path / "asym.csv")
    (tmp_path / "mu.csv").write_text("0.5,0.6\n")
    with pytest.raises(ValueError, match="sum to 1"):
        load_vector(tmp_path / "mu.csv", 2)


def test_a_new_game_family_is_one_registry_entry(monkeypatch):
    """make_game reads everything about a family (usage, arity, defaults, seed, builder) from its
    one GAME_REGISTRY entry: a family added there is built, defaulted, seeded and checked."""
    import tabular.game as game

    def two_step(n, strength, seed):
        P = np.full((n, n), 0.5)
        rng = np.random.default_rng(seed)
        P[np.triu_indices(n, 1)] = 0.5 + strength * (rng.random(n * (n - 1) // 2) - 0.5)
        P[np.tril_indices(n, -1)] = 1.0 - P.T[np.tril_indices(n, -1)]
        return P, None

    entry = game.GameFamily("steps:N[:STRENGTH[:SEED]] a test family",
                            ((int, 4), (float, 0.2), (int, game.SEED_ARG)),
                            two_step)
    monkeypatch.setitem(game.GAME_REGISTRY, "steps", entry)
    P, scores = game.make_game("steps:6:0.4", seed=3)
    assert P.shape == (6, 6) and scores is None and np.allclose(P + P.T, 1.0)
    assert np.array_equal(P, game.make_game("steps:6:0.4:3")[0])  # the seed argument is the default
    assert game.make_game("steps")[0].shape == (4, 4)
    with pytest.raises(ValueError, match="takes at most 3 argument"):
        game.make_game("steps:6:0.4:3:9")
    with pytest.raises(ValueError, match="arguments must be numbers"):
        game.make_game("steps:six")
