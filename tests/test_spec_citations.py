"""Every "SPEC §N" / "SPEC §N.k" cited in the source resolves in docs/spec.md (the project's
statement of the mathematics): section N exists, and for N.k its numbered item k exists."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CITATION = re.compile(r"SPEC §(\d+)(?:\.(\d+))?")


def sections(text: str) -> dict[str, str]:
    """{"N": body of "## N. ..."} of the spec."""
    parts = re.split(r"^## (\d+)\. .*$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def cited() -> dict[tuple[str, str | None], list[str]]:
    out = {}
    for top in ("tabular", "llm", "figures", "proofs_check", "benchmarks", "tests"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                if name.endswith(".py") and name != os.path.basename(__file__):
                    path = os.path.join(dirpath, name)
                    with open(path, encoding="utf-8") as f:
                        for m in CITATION.finditer(f.read()):
                            out.setdefault((m.group(1), m.group(2)), []).append(os.path.relpath(path, ROOT))
    return out


def test_every_spec_citation_resolves():
    with open(os.path.join(ROOT, "docs", "spec.md"), encoding="utf-8") as f:
        spec = sections(f.read())
    refs = cited()
    assert len(refs) >= 5  # the check is not vacuous
    missing = []
    for (sec, item), where in sorted(refs.items(), key=str):
        body = spec.get(sec)
        if body is None or (item is not None and not re.search(rf"^{item}\. ", body, flags=re.M)):
            missing.append(f"SPEC §{sec}{'.' + item if item else ''} (cited in {sorted(set(where))[0]})")
    assert not missing, "citations with no section or item in docs/spec.md: " + "; ".join(missing)


def test_the_check_can_fail():
    assert CITATION.search("see SPEC §9.4") and "9" not in sections("## 1. A\ntext\n## 2. B\n")
