"""The documentation site (mkdocs.yml, docs/) builds with `mkdocs build --strict`, so every link
between its pages and every anchor resolves; a broken one fails the build (shown on a copy of the
docs); the Markdown renders as tables, lists and code blocks, not as stray text; and the README's
links into the site resolve too."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """`mkdocs build --strict` as `make docs` runs it, into `site`."""
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config)]
    return subprocess.run(
        [*command, "-d", str(site)], capture_output=True, text=True, timeout=50, check=False
    )


def nav_pages(nav: list[Any]) -> list[str]:
    """The Markdown files mkdocs.yml's nav names, in order, sections flattened."""
    pages: list[str] = []
    for entry in nav:
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def config() -> dict[str, Any]:
    # mkdocs.yml is plain YAML (no !ENV or !relative tags), so safe_load reads all of it.
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    return loaded


def page_html(site: Path, page: str) -> Path:
    """Where a page lands with MkDocs' default directory URLs: a.md -> a/index.html."""
    stem = page.removesuffix(".md")
    return site / ("index.html" if stem == "index" else f"{stem}/index.html")


def anchors(built: Path) -> set[str]:
    return set(re.findall(r'\sid="([^"]+)"', built.read_text()))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "site"
    built = mkdocs_build(ROOT / "mkdocs.yml", out)
    assert built.returncode == 0, built.stderr
    return out


def test_every_page_of_the_nav_is_built_and_every_page_is_in_the_nav(site: Path) -> None:
    pages = nav_pages(config()["nav"])
    assert len(pages) == len(set(pages))
    on_disk = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert sorted(on_disk - set(pages)) == [], "add these pages to mkdocs.yml's nav"
    for page in pages:
        assert page_html(site, page).is_file(), page
    # The picture is served, the script that draws it is not.
    assert (site / "architecture.png").is_file()
    assert not (site / "architecture.py").exists()


def visible_text(built: Path) -> str:
    """The text of a page's own content (the theme's `role="main"` column up to its footer),
    without code (which may hold Markdown-looking text) and headings (`1. The image`)."""
    text = built.read_text()
    text = text[text.index('role="main"') : text.index("<footer")]
    text = re.sub(r"<(pre|code|h[1-6])\b.*?</\1>", "", text, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", text))


@pytest.mark.parametrize("page", nav_pages(config()["nav"]))
def test_the_markdown_renders_with_no_stray_markup(site: Path, page: str) -> None:
    """Python-Markdown is stricter than GitHub: a table or list needs a blank line above it, a
    nested list four spaces, and a fenced block cannot sit in a list item. Each slip shows as
    raw Markdown in the page."""
    text = visible_text(page_html(site, page))
    stray = [
        line
        for line in text.splitlines()
        if "```" in line or re.match(r"\s*\|.*\|\s*$", line) or re.match(r"\s*(- |\d+\. )\S", line)
    ]
    assert stray == [], f"{page}: Markdown left unrendered"


def test_the_readme_links_into_the_site_resolve(site: Path) -> None:
    """The README is not part of the site (GitHub shows it), so MkDocs checks none of its links:
    each must name a file, each anchor must be on its page, and every page but the home (which
    repeats the README's top) must be linked."""
    links = re.findall(r"\]\(([^)\s]+)\)", (ROOT / "README.md").read_text())
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    pages = set()
    for link in local:
        path, _, anchor = link.partition("#")
        assert (ROOT / path).is_file(), f"README links to {path}, which does not exist"
        if path.endswith(".md"):
            pages.add(str(Path(path).relative_to("docs")))
        if anchor:
            built = page_html(site, str(Path(path).relative_to("docs")))
            assert anchor in anchors(built), f"README: no #{anchor} in {path}"
    assert sorted(set(nav_pages(config()["nav"])) - pages - {"index.md"}) == []


def readme_top(text: str) -> str:
    return text[: text.index("## Architecture")]


def test_the_site_home_starts_as_the_readme_does() -> None:
    """docs/index.md repeats the README's top (the two commands, what Headroom is) word for
    word, so the two cannot drift apart."""
    top = readme_top((ROOT / "README.md").read_text())
    assert top.startswith("# Headroom\n\n```sh\nmake demo ")
    assert (DOCS / "index.md").read_text().startswith(top)


def docs_copy(tmp_path: Path) -> Path:
    tmp_path.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(DOCS, tmp_path / "docs")
    return tmp_path


@pytest.mark.parametrize(
    ("page", "link", "broken", "message"),
    [
        ("contract.md", "(concepts.md#gpu-accounting)", "(concepts.md#gpu-acount)", "#gpu-acount"),
        ("install.md", "(operations/rbac.md)", "(operations/rbca.md)", "operations/rbca.md"),
        ("operations/alerts.md", "(#headroomgpulost)", "(#headroomgpulots)", "#headroomgpulots"),
    ],
)
def test_a_broken_link_or_anchor_fails_the_build(
    tmp_path: Path, page: str, link: str, broken: str, message: str
) -> None:
    tree = docs_copy(tmp_path / "tree")
    target = tree / "docs" / page
    text = target.read_text()
    assert link in text, f"{page} no longer has the link this test breaks"
    before = mkdocs_build(tree / "mkdocs.yml", tmp_path / "site-before")
    assert before.returncode == 0, before.stderr
    target.write_text(text.replace(link, broken, 1))
    after = mkdocs_build(tree / "mkdocs.yml", tmp_path / "site-after")
    assert after.returncode != 0
    assert page in after.stderr and message in after.stderr, after.stderr


def test_make_docs_builds_strictly_into_the_ignored_site_directory() -> None:
    makefile = (ROOT / "Makefile").read_text()
    rule = re.search(r"^docs:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert rule, "Makefile: no docs rule"
    assert "mkdocs build --strict -d site/" in rule.group(1)
    assert "/site/" in (ROOT / ".gitignore").read_text().splitlines()
