"""The README and docs/: every link resolves, the README stays a front page, no Markdown names a machine path."""
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 150
RESULTS_MARKERS = ("<!-- results-table:start -->", "<!-- results-table:end -->")
# Folders that exist only on one machine: a user's home, a mount, a work or scratch area.
MACHINE_PATH = re.compile(r"(?<![\w.~])(/work/|/home/\w|/Users/\w|/root/|/mnt/\w|/scratch/\w)|\b[A-Z]:\\\w")

CODE_BLOCK = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'(][^)]*)?\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def prose(text: str) -> str:
    """Return Markdown without fenced code blocks and code spans (links there are examples, not links)."""
    return CODE_SPAN.sub("", CODE_BLOCK.sub("", text))


def links(text: str) -> list:
    """Return the targets of every inline link, image and reference definition in Markdown."""
    body = prose(text)
    return INLINE_LINK.findall(body) + REFERENCE_LINK.findall(body)


def slug(heading: str) -> str:
    """Return the anchor GitHub gives a heading: its text, lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors by its text
    text = text.replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set:
    """Return every heading anchor of a Markdown file (a repeated heading gets -1, -2, ... as on GitHub)."""
    seen, out = {}, set()
    for heading in HEADING.findall(CODE_BLOCK.sub("", path.read_text(encoding="utf-8"))):
        s = slug(heading)
        out.add(s if s not in seen else f"{s}-{seen[s]}")
        seen[s] = seen.get(s, 0) + 1
    return out


def broken_links(path: Path, root: Path = ROOT) -> list:
    """Return 'file: target (why)' for every relative link or image of a Markdown file that does not resolve."""
    problems = []
    for target in links(path.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto: ...: not a file
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(root)}: {target}"
        if not dest.exists():
            problems.append(f"{where} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{where} (no heading '#{anchor}' in {dest.name})")
    return problems


def markdown_files() -> list:
    """Return the project's Markdown files that git tracks or would track (untracked, not ignored)."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"], cwd=ROOT,
                         capture_output=True, text=True)
    names = out.stdout.split() if out.returncode == 0 else []
    found = {ROOT / n for n in names} | {ROOT / "README.md", *ROOT.glob("docs/*.md")}
    return sorted(p for p in found if p.exists())


def doc_pages() -> list:
    """Return README.md and every page of docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_link_and_image_in_the_readme_and_docs_resolves():
    assert len(doc_pages()) > 1, "docs/ holds no page"
    problems = [p for page in doc_pages() for p in broken_links(page)]
    assert problems == [], "broken links:\n" + "\n".join(problems)


def test_the_readme_links_every_page_of_docs():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links((ROOT / "README.md").read_text(encoding="utf-8"))}
    orphans = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked]
    assert orphans == [], f"docs pages the README does not link to: {orphans}"


def test_the_checker_reports_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "other.md").write_text("# Some heading\n\n## `code` and *more*: here\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md) [ok](other.md#some-heading) [ok](other.md#code-and-more-here) [ok](#top)\n"
                    "# Top\n![img](missing.png) [bad](other.md#nowhere) [web](https://example.org/x)\n"
                    "`[not a link](nope.md)`\n```\n[not a link](nope.md)\n```\n[ref]: gone.md\n")
    assert broken_links(page, root=tmp_path) == ["page.md: missing.png (no such file)",
                                  "page.md: other.md#nowhere (no heading '#nowhere' in other.md)",
                                  "page.md: gone.md (no such file)"]


def test_the_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; valid: at most {README_MAX_LINES}"
    start, end = (lines.index(m) if m in lines else None for m in RESULTS_MARKERS)
    assert start is not None and end is not None, f"README.md lacks a marker line: {RESULTS_MARKERS}"
    table = lines[start + 1:end]
    rows = [line for line in table if line.startswith("|")]
    assert start < end and len(rows) >= 3 and rows[1].startswith("|---"), \
        "the results block must hold a Markdown table (header, rule, rows)"


def test_no_markdown_names_a_machine_path():
    hits = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in markdown_files()
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if MACHINE_PATH.search(line)]
    assert hits == [], "machine paths in Markdown (write them relative to the project):\n" + "\n".join(hits)


def test_the_machine_path_pattern():
    for bad in ("see /work/main/x", "at /home/alice/data", "(/Users/bob/cifar)", "C:\\data"):
        assert MACHINE_PATH.search(bad), bad
    for fine in ("../shared/data/cifar10-jpeg", "REPORT_DIR=/tmp/r", "report/readme/x.png", "runs/<id>/"):
        assert not MACHINE_PATH.search(fine), fine
