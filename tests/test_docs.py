"""The front door and the manual (issue 20): README.md stays a front door (<= 150 lines), every
page of docs/ is in the manual's navigation, and every relative link of the README and the manual
resolves to a file of the repository (the site's strict build leaves links outside docs/ to this
test: ``mkdocs.yml``, ``validation``)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md"))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; move detail into docs/"
    assert "python3 tasks.py run" in "\n".join(lines) and "python3 tasks.py test" in "\n".join(lines)


def test_every_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    assert PAGES and all(re.search(rf":\s+{re.escape(page)}\s*$", nav, re.M) for page in PAGES), [
        p for p in PAGES if not re.search(rf":\s+{re.escape(p)}\s*$", nav, re.M)]


@pytest.mark.parametrize("doc", ["README.md", "llm/README.md"] + [f"docs/{p}" for p in PAGES])
def test_relative_links_resolve(doc):
    path = ROOT / doc
    bad = []
    for target in LINK.findall(path.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a URL, or an anchor on the same page
        file = target.split("#")[0]
        if not (path.parent / file).resolve().exists():
            bad.append(target)
    assert not bad, f"{doc}: links to missing files: {bad}"
