"""The package and its tests need nothing outside the repository.

A user's clone has no sibling directories: a test that reads a file beside the repository
cannot pass there (issue 13, "Tests that stand on their own"). Every code and data file
under tests/ and trestle_tasks/ is scanned for the ways a path can leave the repository:
a string with a parent-directory step, a join onto a directory named shared, an absolute
path into the machine the project was developed on, and `Path(__file__)` climbing more
parents than the file is deep. Documentation (Markdown) is not scanned.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("tests", "trestle_tasks")
SKIPPED_SUFFIXES = {".md", ".pyc"}

OUTSIDE_PATTERNS: dict[str, re.Pattern[str]] = {
    "a parent-directory step in a string": re.compile(r"""["'][^"'\n]*\.\.[/\\]"""),
    "a parent-directory path component": re.compile(r"""(?:,|/)\s*["']\.\.["']"""),
    "a path joined onto a directory named shared": re.compile(r"""/\s*["']shared["'/\\]"""),
    "a relative path starting at a directory named shared": re.compile(r"""["']shared/"""),
    "an absolute path into the development machine": re.compile(r"""["']/work/"""),
    "the parent of the repository root": re.compile(r"\b(?:REPO_ROOT|ROOT_DIR|ROOT)\.parent\b"),
}
# Path(__file__) followed by .parent / .parents[n] steps (after an optional .resolve()).
FILE_CLIMB = re.compile(
    r"Path\(__file__\)(?:\.resolve\(\)|\.absolute\(\))?((?:\.parent\b|\.parents\[\d+\])+)")


def climb(steps: str) -> int:
    """How many directories `.parent.parents[2]`-style steps go up."""
    return sum(int(n) + 1 if n else 1
               for n in re.findall(r"\.parents?(?:\[(\d+)\])?", steps))


def outside_references(text: str, relative: Path) -> list[str]:
    """Each way `text` (the file at `relative` in the repository) leaves the repository."""
    found = [
        f"{relative}:{text.count(chr(10), 0, match.start()) + 1}: {what}: {match.group(0)!r}"
        for what, pattern in OUTSIDE_PATTERNS.items()
        for match in pattern.finditer(text)
    ]
    for match in FILE_CLIMB.finditer(text):
        # From repo/a/b/file.py, one step reaches repo/a, len(parts) steps reach repo.
        if climb(match.group(1)) > len(relative.parts):
            line = text.count("\n", 0, match.start()) + 1
            found.append(f"{relative}:{line}: Path(__file__) climbs above the repository: "
                         f"{match.group(0)!r}")
    return found


def scanned_files() -> list[Path]:
    """Every file under SCANNED but this one, whose BAD_LINES are the checker's examples."""
    files = []
    for top in SCANNED:
        for path in sorted((REPO_ROOT / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and \
                    path.suffix not in SKIPPED_SUFFIXES and path != Path(__file__).resolve():
                files.append(path)
    return files


def test_no_file_under_tests_or_the_package_refers_outside_the_repository() -> None:
    files = scanned_files()
    assert len(files) > 50 and any(p.name == "wide_metadata.py" for p in files)
    problems: list[str] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary data: no paths to follow
        problems += outside_references(text, path.relative_to(REPO_ROOT))
    assert not problems, "\n".join(problems)


# The checker itself, on made-up lines.
# Assembled from parts, so that this file itself holds none of the paths it describes.
DOTS = ".."
UP = "../"
OUT = "shared"
BAD_LINES = [
    f'METADATA = Path("{UP}{OUT}/trestle/metadata/x.xml")',
    f"open('{UP}{UP}data.xml')",
    f'os.path.join(HERE, "{DOTS}", "{OUT}", "x.xml")',
    f'SHARED = REPO_ROOT.parent / "{OUT}"',
    f'SHARED = BASE / "{OUT}" / "trestle"',
    f"FACTS = Path('{OUT}/trestle/FACTS.md')",
    f'DATA = Path("/work/{OUT}/x.xml")',
    'X = Path(__file__).parents[2].parent / "data"',
    "X = Path(__file__).resolve().parents[3]",
    "X = Path(__file__).parent.parent.parent.parent",
]
GOOD_LINES = [
    "REPO_ROOT = Path(__file__).resolve().parents[2]",
    "HERE = Path(__file__).parent",
    "X = Path(__file__).parent.parent.parent",
    "client = factory.trestle_client(settings, shared=False)",
    'words = ("shared", "private")',
    'url = "https://ddwiki.reso.org/display/DDW20/ListPrice+Field"',
    'pattern = "a.b..c"',
    "# binary'..', duration'..' literals are not supported",
]


@pytest.mark.parametrize("line", BAD_LINES)
def test_the_checker_finds_paths_that_leave_the_repository(line: str) -> None:
    assert outside_references(line, Path("tests/integration/test_x.py")), line


@pytest.mark.parametrize("line", GOOD_LINES)
def test_the_checker_accepts_paths_inside_the_repository(line: str) -> None:
    assert not outside_references(line, Path("tests/integration/test_x.py")), line
