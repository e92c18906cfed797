"""README.md says what the project does: its commands, files and options are the real ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scenarios.loader import load_scenario
from sim.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI = ROOT / ".ci" / "run"

INSTALL_AND_RUN = (
    "python3 -m venv .venv && .venv/bin/pip install -q -e . && "
    ".venv/bin/twin run scenarios/demo.yaml"
)
INSTALL_AND_TEST = (
    "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/python -m pytest"
)

FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order."""
    return [(match.group(1), match.group(2)) for match in FENCE.finditer(text)]


def test_first_two_blocks_are_install_run_and_install_test() -> None:
    """The first two fenced blocks are bash, one line each: install+run, then install+test."""
    blocks = fenced_blocks(README.read_text())
    assert len(blocks) >= 2
    assert blocks[0] == ("bash", INSTALL_AND_RUN + "\n")
    assert blocks[1] == ("bash", INSTALL_AND_TEST + "\n")


def test_the_blocks_come_first_under_set_up() -> None:
    """Both commands sit in the first section, before any other heading."""
    text = README.read_text()
    headings = [m.start() for m in re.finditer(r"^## ", text, re.M)]
    assert text[headings[0] :].startswith("## Set up and run")
    first_section = text[headings[0] : headings[1]]
    assert INSTALL_AND_RUN in first_section
    assert INSTALL_AND_TEST in first_section


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    """.ci/run contains the README's test command as a line of its own, and is executable."""
    lines = CI.read_text().splitlines()
    assert INSTALL_AND_TEST in lines
    assert lines[0].startswith("#!")
    assert CI.stat().st_mode & 0o111


def test_readme_run_folder_table_matches_a_real_run(small_run) -> None:
    """Every file the README's run-folder table lists is in a real run folder."""
    text = README.read_text()
    section = text.split("## What a run gives you", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `([^`]+)`", section, re.M)
    listed += re.findall(r"^\| `[^`]+`, `([^`]+)`", section, re.M)
    assert {"report.md", "summary.json", "manifest.json", "kpis.csv", "events.sqlite"} <= set(
        listed
    )
    for name in listed:
        if name.endswith("*.png"):
            assert list((small_run.dir / name.split("/")[0]).glob("*.png")), name
        else:
            assert (small_run.dir / name).exists(), name


def commands_block() -> str:
    """The README's `text` block listing the twin's commands."""
    return next(
        body
        for lang, body in fenced_blocks(README.read_text())
        if lang == "text" and body.startswith("twin run")
    )


@pytest.mark.parametrize(
    "command",
    [["run"], ["verify"], ["replay-events"], ["scenario", "check"], ["params"], ["stack"]],
)
def test_every_documented_command_exists(command) -> None:
    """Each command the README lists answers --help."""
    assert f"twin {' '.join(command)} " in commands_block()
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output


def test_every_documented_option_exists() -> None:
    """Each --option the README gives a command is in that command's --help."""
    block = commands_block()
    entries = re.split(r"^(?=twin )", block, flags=re.M)
    checked = 0
    for entry in entries:
        words = entry.split()
        if len(words) < 2:
            continue
        command = words[1:3] if words[1] == "scenario" else words[1:2]
        options = set(re.findall(r"--[a-z][a-z-]*", entry))
        help_text = CliRunner().invoke(app, [*command, "--help"]).stdout
        for option in options:
            assert option in help_text, (command, option)
            checked += 1
    assert checked >= 12


def test_demo_and_baseline_are_as_described() -> None:
    """The README's sizes are the files': demo at its stated % of full size for a year."""
    text = " ".join(README.read_text().split())
    demo = load_scenario(ROOT / "scenarios" / "demo.yaml")
    baseline = load_scenario(ROOT / "scenarios" / "baseline.yaml")
    stated = re.search(
        r"`scenarios/demo\.yaml`\W+four tenants at (\d+)% of full size, one year", text
    )
    assert stated is not None
    assert demo.scale == int(stated.group(1)) / 100
    assert demo.duration_days == 365
    full = re.search(r"full size: ([\d,]+) / ([\d,]+) / ([\d,]+) / ([\d,]+) members", text)
    assert full is not None
    members = [int(group.replace(",", "")) for group in full.groups()]
    assert [t.members for t in demo.tenants] == members
    assert [t.members for t in baseline.tenants] == members
    assert "over three years" in text
    assert (baseline.scale, baseline.years) == (1.0, 3)
    assert f"runs/{demo.name}-{demo.seed}/" in text
