"""Summary of a ``python -m llm exact`` run: intervals over chains, paired tests, Holm adjustment.

Every number is a mean over chains of an exact per-chain quantity (a mean over the evaluation
prompts of an exact law's metric), with a 95 % Student-t interval over chains
(:func:`opo_toolkit.stats.t_halfwidth`). Comparisons are paired within chains (the same SFT model and
prompts) and each family's p-values are Holm-adjusted (:func:`opo_toolkit.stats.holm_adjust`); a
comparison is "separated" only when its adjusted p-value is below 0.05.

Families (each over every rho and split it lists):
  - ``to_target``: does KL(pi || own target) fall below KL(SFT || own target)? (one-sided by sign)
  - ``win_vs_rl``: is a Nash method's exact win rate against the trained RL policy != 1/2?
  - ``dpo_slic_vs_ipo``: is KL(pi || pi*) of online DPO / SLiC different from online IPO's?
"""

from __future__ import annotations

import glob
import json
import os
from collections import defaultdict

import numpy as np

from opo_toolkit.stats import holm_adjust, t_halfwidth, t_pvalue

from .exact_targets import NO_POINT_LIMIT

__all__ = ["summarise", "stat", "NASH_METHODS"]

NASH_METHODS = ("online_ipo", "ipo_md", "nash_md_pg", "self_play")


def stat(values) -> dict:
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "halfwidth": t_halfwidth(v), "n": int(v.size),
            "values": v.tolist()}


def _load(out, chains: int):
    units, targets, cross = defaultdict(dict), defaultdict(dict), defaultdict(dict)
    for path in sorted(glob.glob(os.path.join(out, "units", "chain*", "rho*", "*.json"))):
        chain = int(path.split(os.sep)[-3][5:])
        if chain >= chains:  # a run resumed with fewer --chains summarises its first ones
            continue
        rho = float(path.split(os.sep)[-2][3:])
        name = os.path.basename(path)[:-5]
        with open(path) as f:
            data = json.load(f)
        if name == "_targets":
            targets[rho][chain] = data
        elif name == "_cross":
            cross[rho][chain] = data
        else:
            units[(rho, name)][chain] = data
    return units, targets, cross


def _family(rows: list[dict]) -> list[dict]:
    adj = holm_adjust([r["p"] for r in rows])
    for r, a in zip(rows, adj):
        r["p_holm"] = float(a)
        r["separated"] = bool(a < 0.05)
    return rows


def summarise(out: str, cfg) -> dict:
    units, targets, cross = _load(out, cfg.chains)
    rhos = sorted(targets)
    splits = ("train", "test")
    summary = {"config": {k: v for k, v in vars(cfg).items()}, "rhos": rhos, "methods": {}, "targets": {},
               "cross": {}, "families": {}}
    # targets: distances between targets, certificates, transitivity of the judge (per rho, split)
    for rho in rhos:
        per = {}
        for split in splits:
            rows = [targets[rho][c][split] for c in sorted(targets[rho])]
            keys = [k for k in rows[0] if k != "per_prompt"]
            per[split] = {k: (max(r[k] for r in rows) if k.startswith("certificate/")
                              else stat([r[k] for r in rows]))
                          for k in keys}
        summary["targets"][f"{rho:g}"] = per
    # each method: final metrics and the curve of KL to its own target
    for (rho, method), chains in sorted(units.items()):
        c0 = chains[min(chains)]
        target = c0["target"]
        # point_limit False: the target is a reference point only (SLiC has no point limit)
        entry = {"target": target, "point_limit": method not in NO_POINT_LIMIT, "chains": len(chains)}
        for split in splits:
            finals = [chains[c]["curve"][-1] for c in sorted(chains)]
            starts = [chains[c]["curve"][0] for c in sorted(chains)]
            keys = [k.split("/", 1)[1] for k in finals[0]
                    if k.startswith(split + "/") and k != f"{split}/per_prompt"]
            entry[split] = {k: stat([f[f"{split}/{k}"] for f in finals]) for k in keys}
            entry[split]["start_kl_to_target"] = stat([s[f"{split}/kl_to/{target}"] for s in starts])
            tgt = targets.get(rho, {})
            both = [c for c in sorted(chains) if c in tgt]
            if both:  # achieved vs predicted, per prompt (means over chains)
                entry[split]["per_prompt"] = {
                    "achieved_win_vs_sft": np.mean(
                        [chains[c]["curve"][-1][f"{split}/per_prompt"]["win_vs/sft"] for c in both],
                        0).tolist(),
                    "predicted_win_vs_sft": np.mean([tgt[c][split]["per_prompt"][f"win/{target}_vs_sft"]
                                                     for c in both], 0).tolist(),
                    f"kl_to/{target}": np.mean(
                        [chains[c]["curve"][-1][f"{split}/per_prompt"][f"kl_to/{target}"] for c in both],
                        0).tolist()}
            steps = [r["step"] for r in c0["curve"]]
            entry[split]["curve"] = {
                "step": steps,
                f"kl_to/{target}": [stat([chains[c]["curve"][i][f"{split}/kl_to/{target}"]
                                          for c in sorted(chains)])
                                    for i in range(len(steps))],
                "kl_to/nash": [stat([chains[c]["curve"][i][f"{split}/kl_to/nash"] for c in sorted(chains)])
                               for i in range(len(steps))]}
        summary["methods"].setdefault(f"{rho:g}", {})[method] = entry
    # between trained policies
    for rho in rhos:
        chains = sorted(cross[rho])
        if not chains:
            continue
        per = {}
        for split in splits:
            names = sorted(cross[rho][chains[0]][split]["win"])
            per[split] = {kind: {a: {b: stat([cross[rho][c][split][kind][a][b] for c in chains])
                                     for b in names}
                                 for a in names} for kind in ("win", "kl")}
        summary["cross"][f"{rho:g}"] = per
    summary["families"] = families(summary, rhos)
    return summary


def families(summary: dict, rhos) -> dict:
    fam = {"to_target": [], "win_vs_rl": [], "dpo_slic_vs_ipo": []}
    for rho in rhos:
        key = f"{rho:g}"
        methods = summary["methods"].get(key, {})
        for split in ("train", "test"):
            for name, e in methods.items():
                t = e["target"]
                if name in NO_POINT_LIMIT:
                    continue
                d = np.subtract(e[split][f"kl_to/{t}"]["values"], e[split]["start_kl_to_target"]["values"])
                fam["to_target"].append({"rho": rho, "split": split, "method": name, "target": t,
                                         "diff": stat(d), "p": t_pvalue(d)})
            cross = summary["cross"].get(key, {}).get(split)
            if cross and "rl" in cross["win"]:
                for name in NASH_METHODS:
                    if name in cross["win"]:
                        w = cross["win"][name]["rl"]["values"]
                        fam["win_vs_rl"].append({"rho": rho, "split": split, "method": name,
                                                 "win": stat(w), "p": t_pvalue(w, 0.5)})
            if "online_ipo" in methods:
                base = methods["online_ipo"][split]["kl_to/nash"]["values"]
                for name in ("online_dpo", "online_slic"):
                    if name in methods:
                        d = np.subtract(methods[name][split]["kl_to/nash"]["values"], base)
                        fam["dpo_slic_vs_ipo"].append({"rho": rho, "split": split, "method": name,
                                                       "diff": stat(d), "p": t_pvalue(d)})
    # does the Nash methods' win rate against RL move with rho, as tabular predicts? (paired per chain:
    # the change from the smallest to the largest rho, against the change of the targets' win rate)
    fam["win_vs_rl_change"] = []
    if len(rhos) > 1:
        lo, hi = f"{min(rhos):g}", f"{max(rhos):g}"
        for split in ("train", "test"):
            cl, ch = (summary["cross"].get(k, {}).get(split) for k in (lo, hi))
            if not (cl and ch and "rl" in cl["win"] and "rl" in ch["win"]):
                continue
            for name in NASH_METHODS:
                if name not in cl["win"] or name not in ch["win"]:
                    continue
                a, b = cl["win"][name]["rl"]["values"], ch["win"][name]["rl"]["values"]
                target = summary["methods"][hi][name]["target"]
                pa = summary["targets"][lo][split][f"win/{target}_vs_rlhf"]["values"]
                pb = summary["targets"][hi][split][f"win/{target}_vs_rlhf"]["values"]
                if not len(a) == len(b) == len(pa) == len(pb):
                    continue  # unequal chains at the two rhos: no pairing
                d = np.subtract(b, a)
                fam["win_vs_rl_change"].append({"from_rho": min(rhos), "to_rho": max(rhos), "split": split,
                                                "method": name, "change": stat(d),
                                                "predicted_change": stat(np.subtract(pb, pa)),
                                                "p": t_pvalue(d)})
    return {k: _family(v) for k, v in fam.items()}


# -- rendering (README blocks) ------------------------------------------------------------------
BLOCK_START, BLOCK_END = "<!-- exact-report -->", "<!-- /exact-report -->"


def _ci(s, digits=3) -> str:
    if s["n"] < 2 or not np.isfinite(s["halfwidth"]):
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ± {s['halfwidth']:.{digits}f}"


def _sci(s) -> str:
    if s["n"] < 2 or not np.isfinite(s["halfwidth"]):
        return f"{s['mean']:.2g}"
    return f"{s['mean']:.2g} ± {s['halfwidth']:.1g}"


def _made(summary: dict) -> str:
    p = summary.get("provenance")
    if not p or "seconds" not in summary:
        return ""
    git = p["git"]
    commit = (f"{git['commit'][:10]}{' + local changes' if git['dirty'] else ''}" if git.get("commit")
              else "no git")
    cpu, v = p["cpu"], p["versions"]
    return (f" Wall time {summary['seconds'] / 60:.0f} min on {cpu['model']} ({cpu['logical_cores']} logical "
            f"cores; 15-min load average at the end {p['load_average']['15min']:.1f}), torch {v['torch']}, "
            f"transformers {v['transformers']}; summarised at commit {commit} on {p['date_utc'][:10]}.")


def render(summary: dict, split: str = "test") -> str:
    """The markdown tables of a summary (``split`` prompts; the train-split numbers are in the JSON)."""
    cfg = summary["config"]
    chains = max(e["chains"] for m in summary["methods"].values() for e in m.values())
    lines = [f"{chains} chains; tau = {cfg['tau']:g}, beta = {cfg['beta']:g}; K = {cfg['K']} content tokens, "
             f"L = {cfg['L']} (n = {sum(cfg['K'] ** k for k in range(cfg['L'] + 1))} responses per prompt); "
             f"{cfg['steps']} alignment steps of {cfg['batch_size']} prompts; {cfg['eval_prompts']} "
             f"{split}-split prompts per chain. Mean ± 95 % t-interval over chains." + _made(summary), "",
             "**The judge and the exact targets** (tabular, per prompt; certificates are the largest over "
             "prompts and chains):", "",
             "| rho | non-transitive share | BT agreement | KL(pi* ‖ SFT) | KL(tok-mix ‖ pi*) | "
             "KL(tok-mix ‖ seq-mix) | KL(DPO limit ‖ pi*) | pi* vs RLHF optimum | gap(pi*) | "
             "tok-mix residual | DPO-limit residual |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for rho, t in summary["targets"].items():
        s = t[split]
        lines.append(f"| {rho} | {_ci(s['intransitive_share'], 2)} | {_ci(s['bt_agreement_uniform'], 2)} | "
                     f"{_ci(s['kl/nash||sft'])} | {_sci(s['kl/tok_mix||nash'])} | "
                     f"{_sci(s['kl/tok_mix||seq_mix'])} | {_ci(s['kl/dpo||nash'])} | "
                     f"{_ci(s['win/nash_vs_rlhf'])} | {s['certificate/nash_gap']:.1g} | "
                     f"{s['certificate/tok_mix_residual']:.1g} | {s['certificate/dpo_residual']:.1g} |")
    other = "train" if split == "test" else "test"
    lines += ["", "**Where each transformer lands** (exact, against its own target and against pi*; "
              f"the last column on the {other}-split prompts):", "",
              "| rho | method | target | KL(pi ‖ target): SFT → trained | KL(pi ‖ pi*) | gap | win vs SFT | "
              f"KL(pi ‖ target), {other} |",
              "|---|---|---|---|---|---|---|---|"]
    for rho, methods in summary["methods"].items():
        for name, e in methods.items():
            s, t = e[split], e[other]
            tname = e["target"] if e["point_limit"] else f"{e['target']} (no point limit)"
            lines.append(f"| {rho} | {name} | {tname} | {_ci(s['start_kl_to_target'])} → "
                         f"{_ci(s['kl_to/' + e['target']])} | {_ci(s['kl_to/nash'])} | {_ci(s['gap'])} | "
                         f"{_ci(s['win_vs/sft'])} | {_ci(t['kl_to/' + e['target']])} |")
    fam = summary["families"]
    rows = [r for r in fam.get("win_vs_rl", []) if r["split"] == split]
    if rows:
        lines += ["", "**Nash methods against RL** (exact win rate of the trained policies; Holm over the "
                  f"{len(fam['win_vs_rl'])} tests of this family, both splits):", "",
                  "| rho | method | transformer | tabular prediction | p (Holm) | separated from 1/2 |",
                  "|---|---|---|---|---|---|"]
        for r in rows:
            target = summary["methods"][f"{r['rho']:g}"][r["method"]]["target"]
            pred = summary["targets"][f"{r['rho']:g}"][split][f"win/{target}_vs_rlhf"]
            lines.append(f"| {r['rho']:g} | {r['method']} | {_ci(r['win'])} | {_ci(pred)} | "
                         f"{r['p_holm']:.2g} | {'yes' if r['separated'] else 'no'} |")
    rows = [r for r in fam.get("win_vs_rl_change", []) if r["split"] == split]
    if rows:
        lines += ["", f"Change of that win rate from rho = {rows[0]['from_rho']:g} to "
                  f"rho = {rows[0]['to_rho']:g} (paired per chain; Holm over the "
                  f"{len(fam['win_vs_rl_change'])} tests of this family):", "",
                  "| method | transformer | tabular prediction | p (Holm) | separated from 0 |",
                  "|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['method']} | {_ci(r['change'])} | {_ci(r['predicted_change'])} | "
                         f"{r['p_holm']:.2g} | {'yes' if r['separated'] else 'no'} |")
    rows = [r for r in fam.get("dpo_slic_vs_ipo", []) if r["split"] == split]
    if rows:
        lines += ["", "**Online DPO / SLiC against online IPO** (KL(pi ‖ pi*) minus online IPO's, "
                  f"paired; Holm over the {len(fam['dpo_slic_vs_ipo'])} tests of this family):", "",
                  "| rho | method | difference | p (Holm) | separated |", "|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['rho']:g} | {r['method']} | {_ci(r['diff'])} | {r['p_holm']:.2g} | "
                         f"{'yes' if r['separated'] else 'no'} |")
    same = []
    for rho, c in summary.get("cross", {}).items():
        kl = c[split]["kl"]
        if "online_ipo" in kl:
            for other in ("ipo_md", "nash_md_pg", "self_play"):
                if other in kl["online_ipo"]:
                    same.append(f"| {rho} | online_ipo ‖ {other} | {_ci(kl['online_ipo'][other])} | "
                                f"{_ci(kl['online_ipo'].get('rl', kl['online_ipo'][other]))} |")
    if same:
        lines += ["", "**The same point?** KL between the trained online-IPO policy and the other Nash "
                  "methods' (same chain), beside its KL to the trained RL policy:", "",
                  "| rho | pair | KL | KL(online_ipo ‖ rl) |", "|---|---|---|---|"] + same
    return "\n".join(lines)


def write_block(path: str, text: str) -> None:
    """Replace the README block between :data:`BLOCK_START` and :data:`BLOCK_END` (atomic)."""
    from opo_toolkit.files import atomic_write_text

    with open(path, encoding="utf-8") as f:
        doc = f.read()
    if (doc.count(BLOCK_START) != 1 or doc.count(BLOCK_END) != 1
            or doc.index(BLOCK_START) > doc.index(BLOCK_END)):
        raise ValueError(f"{path} must hold exactly one {BLOCK_START} ... {BLOCK_END} block")
    head, rest = doc.split(BLOCK_START)
    _, tail = rest.split(BLOCK_END)
    atomic_write_text(path, head + BLOCK_START + "\n" + text + "\n" + BLOCK_END + tail)


def _leaves(obj, path=""):
    """Every number of a summary, by its path (the config, clock time and versions left out)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if path == "" and k in ("config", "seconds", "versions", "provenance"):
                continue
            yield from _leaves(v, f"{path}/{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{path}/{i}")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield path, obj


def compare(reference: dict, run: dict) -> dict:
    """Does ``run`` reproduce ``reference``? ``bit_for_bit``: every number equal (nan equals nan);
    ``within``: every method's final KL to its target lies in the reference's 95 % interval over
    chains (the check for another machine, whose round-off differs). Settings must match."""
    keep = ("out", "resume", "overwrite", "workers")  # scheduling, not what is computed
    if {k: v for k, v in reference["config"].items() if k not in keep} != \
            {k: v for k, v in run["config"].items() if k not in keep}:
        raise ValueError("the two runs were made with different settings (config)")
    a, b = dict(_leaves(reference)), dict(_leaves(run))
    differ = [p for p in a.keys() | b.keys()
              if p not in a or p not in b or not (a[p] == b[p] or (a[p] != a[p] and b[p] != b[p]))]
    outside = []
    for rho, methods in reference["methods"].items():
        for name, e in methods.items():
            for split in ("train", "test"):
                ref = e[split][f"kl_to/{e['target']}"]
                got = run["methods"][rho][name][split][f"kl_to/{e['target']}"]["mean"]
                if ref["n"] > 1 and abs(got - ref["mean"]) > ref["halfwidth"]:
                    outside.append(f"rho {rho} {name} {split}: {got:.4f} outside {ref['mean']:.4f} ± "
                                   f"{ref['halfwidth']:.4f}")
    return {"numbers": len(a), "differ": len(differ), "bit_for_bit": not differ, "outside": outside,
            "within": not outside}


def main(argv=None) -> int:
    """``python -m llm exact-report RUN_DIR [--write FILE] [--split test|train]``."""
    from opo_toolkit.cliargs import Parser, UsageError, run_command

    parser = Parser(prog="python -m llm exact-report",
                    description="Render the tables of a `python -m llm exact` run (RUN_DIR/summary.json) as "
                                f"markdown; with --write, into FILE's {BLOCK_START} ... {BLOCK_END} block.")
    parser.add_argument("run", help="run folder of `python -m llm exact --out RUN_DIR`")
    parser.add_argument("--write", default=None, help="README to rewrite in place (its block only)")
    parser.add_argument("--split", default="test", choices=("test", "train"), help="which prompts to render")
    parser.add_argument("--compare", default=None, metavar="REF_DIR",
                        help="instead of rendering: does RUN_DIR reproduce REF_DIR's summary (bit for bit, "
                             "or within its intervals)? exit 0 if within, 1 if not")
    args = parser.parse_args(argv)

    def read(folder):
        path = os.path.join(folder, "summary.json")
        try:
            with open(path) as f:
                return json.load(f)
        except OSError as e:
            raise UsageError(f"cannot read {path}: {e.strerror}") from None
        except ValueError as e:
            raise UsageError(f"{path} is not JSON: {e}") from None

    def command():
        path = os.path.join(args.run, "summary.json")
        if args.compare:
            try:
                verdict = compare(read(args.compare), read(args.run))
            except (ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
                raise UsageError(f"cannot compare: {e}") from None
            print(f"{verdict['numbers']} numbers, {verdict['differ']} differ: "
                  f"{'bit for bit' if verdict['bit_for_bit'] else 'not bit for bit'}; "
                  f"{'every' if verdict['within'] else 'NOT every'} final KL to target within the "
                  "reference's 95 % interval" + "".join(f"\n  {o}" for o in verdict["outside"]))
            return 0 if verdict["within"] else 1
        try:
            with open(path) as f:
                summary = json.load(f)
            text = render(summary, args.split)
        except OSError as e:
            raise UsageError(f"cannot read {path}: {e.strerror}") from None
        except (ValueError, KeyError, TypeError, IndexError, AttributeError, StopIteration) as e:
            raise UsageError(f"{path} is not a summary of `python -m llm exact`: {e!r}") from None
        if args.write:
            try:
                write_block(args.write, text)
            except OSError as e:
                raise UsageError(f"cannot write {args.write}: {e.strerror}") from None
            except ValueError as e:
                raise UsageError(str(e)) from None
        else:
            print(text)
        return 0

    return run_command("python -m llm exact-report", command)
