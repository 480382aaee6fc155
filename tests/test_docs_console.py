"""The console blocks of README.md and docs/*.md run as written.

Each file's ```console blocks run in order in one temporary working folder that has the real
data at ``../shared/data`` (a link), as a reader following the text would run them; README
from an empty folder, a page of docs/ from where README's tour (its short blocks) left it,
``myproject`` and all. Every
``$ `` command must exit 0, and the output shown under it must appear in what it prints, in
order, numbers and paths of the run aside (the shape, not the values). A block under
``<!-- console: long -->`` (minutes of training) runs only with ``SPECSCOUT_LONG_DOCS=1``, and
one under ``<!-- console: not run (why) -->`` never (a server that runs until stopped, a
download); blocks after a long one that need its results are long too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LONG = os.environ.get("SPECSCOUT_LONG_DOCS") == "1"
MARKER = re.compile(r"<!--\s*console:\s*(long|not run)\b.*-->")


@dataclass
class Command:
    line: int
    text: str
    shown: list[str] = field(default_factory=list)


@dataclass
class Block:
    line: int
    marker: str | None
    commands: list[Command]


def blocks(path: Path) -> list[Block]:
    """The console blocks of a markdown file, with their commands and shown output."""
    found, lines = [], path.read_text().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```console":
            i += 1
            continue
        indent = len(lines[i]) - len(lines[i].lstrip())  # a block in a list item
        above = next((x for x in reversed(lines[:i]) if x.strip()), "")
        marker = MARKER.search(above)
        start, i, commands = i + 1, i + 1, []
        while i < len(lines) and lines[i].strip() != "```":
            text = lines[i][indent:]
            if text.startswith("$ "):
                command = Command(i + 1, text[2:])
                while command.text.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    command.text = command.text[:-1] + " " + lines[i].strip()
                commands.append(command)
            elif commands and text.strip():
                commands[-1].shown.append(text)
            i += 1
        found.append(Block(start, marker.group(1) if marker else None, commands))
        i += 1
    return found


NUMBER = r"[-+]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?"


def shape(shown: str) -> re.Pattern:
    """A line of shown output as a pattern: numbers stand for any number, ``...`` for
    anything, runs of spaces for any spaces."""
    parts = re.split(r"(\.\.\.|" + NUMBER + r"|\s+)", shown.strip())
    pattern = ""
    for part in parts:
        if not part:
            continue
        if part == "...":
            pattern += ".*"
        elif re.fullmatch(NUMBER, part):
            pattern += NUMBER
        elif part.isspace():
            pattern += r"\s+"
        else:
            pattern += re.escape(part)
    return re.compile(pattern)


def missing(shown: list[str], printed: str) -> str | None:
    """The first shown line that does not appear in ``printed`` (after the one before it)."""
    out = [x.strip() for x in printed.splitlines()]
    at = 0
    for line in shown:
        pattern = shape(line)
        while at < len(out) and not pattern.fullmatch(out[at]):
            at += 1
        if at == len(out):
            return line
        at += 1
    return None


def test_the_shape_of_shown_output():
    assert missing(["ingested 192, failed 0 (1.8 s, 105 files/s)"],
                   "x\ningested 20,000, failed 3 (0.4 s, 1e3 files/s)\n") is None
    assert missing(["a 1", "b 2"], "b 2\na 1\n") == "b 2"  # order counts
    assert missing(["kind nebular ..."], "kind stellar, EW 3 A") == "kind nebular ..."
    assert len(blocks(ROOT / "README.md")) >= 3


def run_blocks(doc: Path, work: Path) -> int:
    """Run the console blocks of ``doc`` in ``work``, checking each command; returns how many
    commands ran."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
                                 f"{os.environ.get('PATH', '')}",
           "COLUMNS": "100", "NO_COLOR": "1"}
    assert shutil.which("specscout", path=env["PATH"]), "the specscout command is installed"
    ran = 0
    for block in blocks(doc):
        if block.marker == "not run" or (block.marker == "long" and not LONG):
            continue
        for command in block.commands:
            done = subprocess.run(["bash", "-c", command.text], cwd=work, env=env,
                                  capture_output=True, text=True, timeout=900)
            where = f"{doc.name}:{command.line}: $ {command.text}"
            assert done.returncode == 0, f"{where}\nexit {done.returncode}\n{done.stderr}"
            gone = missing(command.shown, done.stdout + done.stderr)
            assert gone is None, f"{where}\nshown but not printed: {gone!r}\n" \
                                 f"printed:\n{done.stdout}{done.stderr}"
            ran += 1
    return ran


def _folder(root: Path) -> Path:
    """``root/work``, with the real data at ``root/shared/data``."""
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip(f"real data not found at {SHARED_DATA} (set SPECSCOUT_SHARED_DATA)")
    root.mkdir(parents=True, exist_ok=True)
    (root / "shared").mkdir()
    (root / "shared" / "data").symlink_to(SHARED_DATA)
    (root / "work").mkdir()
    return root / "work"


@pytest.fixture(scope="module")
def toured(tmp_path_factory) -> Path:
    """The folder README's tour leaves (its blocks that are not long)."""
    work = _folder(tmp_path_factory.mktemp("readme"))
    assert run_blocks(ROOT / "README.md", work) > 0
    return work


def test_the_readme_runs_as_written(toured):
    assert (toured / "myproject" / "specscout.toml").exists()


@pytest.mark.parametrize("doc", DOCS[1:], ids=lambda p: p.name)
def test_the_docs_run_as_written(doc: Path, toured: Path, tmp_path: Path):
    if not any(b.commands for b in blocks(doc)):
        pytest.skip(f"{doc.name} has no console block")
    work = _folder(tmp_path)
    shutil.copytree(toured, work, dirs_exist_ok=True, symlinks=True)
    if not run_blocks(doc, work):
        pytest.skip(f"every console block of {doc.name} is long or not run")
