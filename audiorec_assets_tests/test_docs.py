"""The documentation stays usable (issue 17): README is a newcomer's page of at most 250 lines, every relative link
in README and docs/ leads to a file (and heading) that exists, every path they name in backticks exists, every
`audiorec …` command README's "Next" shows parses with the CLI's own parser, the commands `.ci/run` runs are the
ones README's "Install" and "Run the tests" give, and every docs/ page a source file names exists. Fast: text only."""

from __future__ import annotations

import argparse
import os
import re
import shlex
from pathlib import Path

import pytest

from audiorec_assets.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
MAX_README_LINES = 250

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\n]+)`")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
# backticked names that are repo paths: top-level folders, or modules named relative to audiorec_assets/
REPO_PATH = re.compile(r"^(?:audiorec_assets|audiorec_assets_tests|bench|deploy|docs|\.ci)/[\w./-]*$")
PACKAGE_PATH = re.compile(r"^(?:defs|data|datasets|encoders|recommenders|evaluation)/[\w/.-]+\.(?:py|yaml|sql)$")


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"(?<!\w)_|_(?!\w)", "", text)  # emphasis underscores go; those inside a word (paper_code) stay
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*$", text, re.MULTILINE)}


def section(page: Path, title: str) -> str:
    """The text under the ``##`` heading ``title`` up to the next ``##`` heading."""
    text = page.read_text()
    match = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"{page.name} has no section '## {title}'"
    return match.group(1)


def test_readme_is_a_short_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move detail into docs/"
    for title in ("Install", "Quick start", "What you get", "Next", "Run the tests", "Documentation"):
        section(README, title)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(FENCE.sub("", page.read_text())):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no file {file}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading '#{anchor}' in {file.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_path_named_in_backticks_exists(page):
    missing = []
    for name in CODE.findall(page.read_text()):
        name = name.strip()
        if any(c in name for c in "<>*{} $"):
            continue
        if REPO_PATH.match(name) and not (ROOT / name).exists():
            missing.append(name)
        elif PACKAGE_PATH.match(name) and not (ROOT / "audiorec_assets" / name).exists():
            missing.append(name)
    assert not missing, f"{page.name} names paths that do not exist: {missing}"


def next_commands() -> list[list[str]]:
    """The argument lists of every `audiorec …` line in the code blocks of README's "Next"."""
    commands = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", section(README, "Next"), re.MULTILINE | re.DOTALL):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words and (words[0] == "audiorec" or words[0].endswith("/bin/audiorec")):
                commands.append(words[1:])
    return commands


class Parsed(Exception):
    pass


def test_every_command_in_next_exists_in_the_cli(monkeypatch):
    commands = next_commands()
    assert any(c[:1] == ["recommend"] for c in commands) and any(c[:1] == ["similar"] for c in commands)
    assert sum(c[:1] == ["sql"] for c in commands) >= 4 and any(c[:1] == ["status"] for c in commands)
    parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        parse(self, args, namespace)  # a bad command or option exits 2 here
        raise Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    for args in commands:
        with pytest.raises(Parsed):
            main(args)


def test_readme_gives_the_commands_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    tests = section(README, "Run the tests")
    runs = re.findall(r"^\.venv/bin/python -m pytest.*$", ci, re.MULTILINE)
    assert runs, ".ci/run runs no pytest command"
    for command in runs:
        assert command.strip() in tests, f"README's 'Run the tests' lacks `{command}` (.ci/run runs it)"
    install = section(README, "Install")
    assert "-e '.[test]'" in ci and "-e '.[test]'" in install
    packages = re.search(r"apt-get install .*?((?:\s+[a-z][\w.-]+)+)\s*$", ci, re.MULTILINE).group(1).split()
    for package in packages:
        assert package in install, f"README's 'Install' does not name the Debian package {package} (.ci/run installs it)"


def test_every_docs_page_a_file_names_exists():
    suffixes = {".py", ".yaml", ".yml", ".toml", ".sql", ".sh", ".md", ".example"}
    skip = {".git", ".venv", "__pycache__", "out", "test-artifacts", ".dagster_home", "node_modules"}
    missing = []
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if d not in skip and not d.endswith(".egg-info")]
        if Path(folder) == ROOT / "data_lake":  # its own files only, not a lake's contents
            subfolders[:] = []
        for name in files:
            file = Path(folder) / name
            if file.suffix not in suffixes and file.parent.name != ".ci":
                continue
            for page in set(re.findall(r"\bdocs/[\w-]+\.md\b", file.read_text(errors="replace"))):
                if not (ROOT / page).exists():
                    missing.append(f"{file.relative_to(ROOT)}: {page}")
    assert not missing, missing
