"""The `twin` command line: exit codes, messages that point at the problem, and its outputs.

Most tests call the typer app in-process with `CliRunner`; two run the
installed console script in a subprocess, end to end. Scenarios are the
small two-tenant one from conftest, shortened where the test allows.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analysis.invariants import INVARIANT_NAMES
from models.macro import parameter_rows
from models.params import SOURCES, Behaviour
from scenarios.loader import load_scenario, parse_scenario
from sim.cli import app
from turingcore import eventlog

DEMO = Path(__file__).resolve().parents[1] / "scenarios" / "demo.yaml"

runner = CliRunner()


def twin(*args: str | Path):  # noqa: ANN201 - typer's Result
    """Invoke `twin ARGS...` in-process."""
    return runner.invoke(app, [str(arg) for arg in args])


def console_script() -> str:
    """The installed `twin` console script next to this interpreter (or on PATH)."""
    beside = Path(sys.executable).with_name("twin")
    if beside.is_file():
        return str(beside)
    found = shutil.which("twin")
    assert found, "the twin console script is not installed"
    return found


def segment_codec() -> tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]:
    """(compress, decompress) of stored segments: the event log's own, else zlib."""
    compress = getattr(eventlog, "compress_segment", None)
    decompress = getattr(eventlog, "decompress_segment", None)
    if compress is not None and decompress is not None:
        return compress, decompress
    return zlib.compress, zlib.decompress


def tamper_one_amount(run_dir: Path, tenant: str) -> int:
    """Change one digit of one leg amount of one stored EntryPosted event; return its seq."""
    compress, decompress = segment_codec()
    connection = sqlite3.connect(run_dir / "events.sqlite")
    try:
        first_seq, data = connection.execute(
            "SELECT first_seq, data FROM segments WHERE tenant_id = ? ORDER BY first_seq LIMIT 1",
            (tenant,),
        ).fetchone()
        lines = decompress(data).split(b"\n")
        index = next(i for i, line in enumerate(lines) if b'"eventType":"EntryPosted"' in line)
        line = lines[index]
        match = re.search(rb'"legs":\[\{"accountId":"[^"]+","amountCents":(\d)', line)
        assert match is not None, line
        digit = match.group(1)
        changed = b"8" if digit == b"9" else bytes([digit[0] + 1])
        lines[index] = line[: match.start(1)] + changed + line[match.end(1) :]
        connection.execute(
            "UPDATE segments SET data = ? WHERE tenant_id = ? AND first_seq = ?",
            (compress(b"\n".join(lines)), tenant, first_seq),
        )
        connection.commit()
    finally:
        connection.close()
    return first_seq + index


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory: pytest.TempPathFactory, small_yaml: str) -> Path:
    """The small scenario as a YAML file."""
    path = tmp_path_factory.mktemp("scenario") / "small.yaml"
    path.write_text(small_yaml)
    return path


@pytest.fixture(scope="module")
def cli_run(scenario_file: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """`twin run small.yaml --out DIR --quiet`, once for the module: (result, DIR)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    return twin("run", scenario_file, "--out", out, "--quiet"), out


# --------------------------------------------------------------------------- twin run


def test_run_exits_0_and_prints_the_verdict(cli_run) -> None:
    """A passing run exits 0 and prints PASS, the report path and each invariant as ok."""
    result, out = cli_run
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"PASS: {out}/report.md"
    for name in INVARIANT_NAMES:
        assert re.search(rf"^\s+ok\s+{name} \(examined [\d,]+\)$", result.stdout, re.M), name


def test_cli_run_equals_the_api_run(cli_run, small_run) -> None:
    """The CLI runs the same twin: same scenario and seed give the same fingerprints."""
    _result, out = cli_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fingerprint"] == small_run.summary["fingerprint"]
    assert summary["passed"] is True


def test_run_records_which_scenario_file_it_ran(cli_run, scenario_file) -> None:
    """summary.json and report.md name the scenario file, not `None`."""
    _result, out = cli_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenario"]["source"] == str(scenario_file)
    report = (out / "report.md").read_text()
    assert "scenario file `None`" not in report
    assert str(scenario_file) in report


def test_run_with_keep_events_none_leaves_nothing_to_verify(scenario_file, tmp_path) -> None:
    """--keep-events none: no events.sqlite; `twin verify` then exits 2 and says why."""
    out = tmp_path / "bare"
    result = twin("run", scenario_file, "--out", out, "--days", "2", "--keep-events", "none")
    assert result.exit_code == 0, result.output
    assert not (out / "events.sqlite").exists()
    assert (out / "summary.json").is_file()
    check = twin("verify", out)
    assert check.exit_code == 2
    assert "events.sqlite" in check.stderr
    assert "--keep-events none" in check.stderr
    replay = twin("replay-events", out, "--tenant-id", "cu-a")
    assert replay.exit_code == 2
    assert "events.sqlite" in replay.stderr


def test_run_without_out_writes_runs_name_seed(scenario_file, tmp_path, monkeypatch) -> None:
    """With no --out the folder is runs/NAME-SEED under the working directory; --seed wins."""
    monkeypatch.chdir(tmp_path)
    result = twin("run", scenario_file, "--days", "1", "--seed", "3", "--quiet")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "runs" / "small-3"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["seed"] == 3
    assert manifest["scenario"]["seed"] == 3
    assert json.loads((folder / "summary.json").read_text())["scenario"]["days"] == 1


def test_force_replaces_an_existing_run_folder(scenario_file, tmp_path) -> None:
    """--force empties the folder first: nothing of the old survives; --quiet prints no bar."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "stale.txt").write_text("old run\n")
    result = twin("run", scenario_file, "--out", out, "--days", "1", "--force", "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert not (out / "stale.txt").exists()
    assert (out / "report.md").is_file()


def test_scale_override_changes_member_counts(scenario_file, tmp_path) -> None:
    """--scale 0.5 halves each tenant's members (40 -> 20, 60 -> 30); progress is on stderr."""
    out = tmp_path / "half"
    result = twin("run", scenario_file, "--out", out, "--days", "1", "--scale", "0.5")
    assert result.exit_code == 0, result.output
    assert "1/1" in result.stderr  # the progress bar goes to stderr, not stdout
    assert result.stdout.startswith("PASS: ")
    tenants = json.loads((out / "summary.json").read_text())["tenants"]
    assert {tenant: data["members"] for tenant, data in tenants.items()} == {
        "cu-a": 20,
        "cu-b": 30,
    }


# --------------------------------------------------------------------------- bad input: exit 2


def write_variant(base: Path, tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the scenario file with one text replacement (which must apply)."""
    text = base.read_text()
    assert old in text
    path = tmp_path / "variant.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def line_of(path: Path, text: str) -> int:
    """1-based number of the first line of `path` containing `text`."""
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_yaml_typo_names_file_line_key_path_and_suggestion(scenario_file, tmp_path) -> None:
    """An unknown key: exit 2, `file:line: tenants[0].memberz: ... did you mean 'members'?`."""
    bad = write_variant(scenario_file, tmp_path, "members: 40", "memberz: 40")
    out = tmp_path / "out"
    result = twin("run", bad, "--out", out, "--quiet")
    assert result.exit_code == 2
    line = line_of(bad, "memberz")
    assert f"{bad}:{line}: tenants[0].memberz: unknown key 'memberz'" in result.stderr
    assert "did you mean 'members'?" in result.stderr
    assert not out.exists()


def test_wrong_type_names_file_line_and_key_path(scenario_file, tmp_path) -> None:
    """A number given as text: exit 2 naming the file, the line and tenants[1].members."""
    bad = write_variant(scenario_file, tmp_path, "members: 60", "members: sixty")
    out = tmp_path / "out"
    result = twin("run", bad, "--out", out, "--quiet")
    assert result.exit_code == 2
    line = line_of(bad, "sixty")
    assert f"{bad}:{line}: tenants[1].members:" in result.stderr
    assert "integer" in result.stderr
    assert "'sixty'" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--warp", "fast"], "--warp: invalid warp 'fast'"),
        (["--warp", "0"], "--warp: invalid warp '0'"),
        (["--warp", "-5"], "--warp: invalid warp '-5'"),
        (["--days", "5", "--years", "1"], "--days and --years"),
        (["--scale", "-1"], "scale: Input should be greater than 0"),
        (["--days", "0"], "days: Input should be greater than or equal to 1"),
    ],
)
def test_bad_options_exit_2_and_write_nothing(scenario_file, tmp_path, options, message) -> None:
    """Each bad option: exit 2, a message naming it, and no run folder created."""
    out = tmp_path / "out"
    result = twin("run", scenario_file, "--out", out, "--quiet", *options)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("twin: error: ")
    assert message in result.stderr
    assert not out.exists()


def test_missing_scenario_file_exits_2(tmp_path) -> None:
    """A scenario path that does not exist: exit 2 naming the path."""
    missing = tmp_path / "nope.yaml"
    result = twin("run", missing, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert f"{missing}: no such scenario file" in result.stderr
    assert not (tmp_path / "out").exists()


def test_non_empty_out_without_force_exits_2_and_changes_nothing(scenario_file, tmp_path) -> None:
    """An occupied --out without --force: exit 2 naming it; its files are exactly as before."""
    out = tmp_path / "occupied"
    (out / "sub").mkdir(parents=True)
    (out / "report.md").write_text("an earlier report\n")
    (out / "sub" / "data.bin").write_bytes(b"\x00\x01\x02")
    before = {
        path.relative_to(out): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in out.rglob("*")
        if path.is_file()
    }
    result = twin("run", scenario_file, "--out", out, "--quiet")
    assert result.exit_code == 2
    assert f"{out}: folder is not empty" in result.stderr
    assert "--force" in result.stderr
    after = {
        path.relative_to(out): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in out.rglob("*")
        if path.is_file()
    }
    assert after == before
    assert sorted(p.name for p in out.iterdir()) == ["report.md", "sub"]


def test_out_that_is_a_file_exits_2(scenario_file, tmp_path) -> None:
    """--out naming an existing file: exit 2, and the file is left as it was."""
    out = tmp_path / "a-file"
    out.write_text("keep me\n")
    result = twin("run", scenario_file, "--out", out, "--quiet", "--force")
    assert result.exit_code == 2
    assert str(out) in result.stderr
    assert out.read_text() == "keep me\n"


def test_out_that_cannot_be_created_exits_2(scenario_file, tmp_path) -> None:
    """--out below a file cannot be made: exit 2 naming the folder, not a traceback (exit 1)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me\n")
    out = blocker / "run"
    result = twin("run", scenario_file, "--out", out, "--quiet")
    assert result.exit_code == 2, repr(result.exception)
    assert result.stderr.startswith("twin: error: ")
    assert str(out) in result.stderr
    assert blocker.read_text() == "keep me\n"


# --------------------------------------------------------------------------- twin verify


def test_verify_passes_on_a_fresh_run(small_run) -> None:
    """`twin verify` on an untouched run folder: exit 0, every invariant ok."""
    result = twin("verify", small_run.dir)
    assert result.exit_code == 0, result.output
    for name in INVARIANT_NAMES:
        assert re.search(rf"^ok\s+{name}: examined [\d,]+$", result.stdout, re.M), name
    assert result.stdout.splitlines()[-1] == "PASS"


def test_verify_finds_one_tampered_amount(copy_run) -> None:
    """One digit changed inside one stored event: exit 1, naming the tenant and the seq."""
    run_dir = copy_run()
    seq = tamper_one_amount(run_dir, "cu-b")
    result = twin("verify", run_dir)
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[-1] == "FAIL"
    failed = next(i for i, line in enumerate(lines) if line.startswith("FAIL event_integrity"))
    detail = lines[failed + 1]
    assert "'tenant': 'cu-b'" in detail
    assert f"'seq': {seq}," in detail
    assert any(line.startswith("ok   tenant_isolation") for line in lines)


def test_verify_of_a_missing_folder_exits_2(tmp_path) -> None:
    """No such run folder: exit 2 with the path in the message."""
    result = twin("verify", tmp_path / "nowhere")
    assert result.exit_code == 2
    assert f"{tmp_path / 'nowhere'}: no such run folder" in result.stderr


# --------------------------------------------------------------------------- scenario check, params


def test_scenario_check_prints_yaml_that_loads_back_equal() -> None:
    """`twin scenario check demo.yaml` prints the resolved scenario; it parses back equal."""
    result = twin("scenario", "check", DEMO)
    assert result.exit_code == 0, result.output
    original = load_scenario(DEMO)
    resolved = parse_scenario(result.stdout, "resolved.yaml")
    assert resolved == original
    assert resolved.fingerprint() == original.fingerprint()
    assert "# ok: 365 days, 4 tenants" in result.stderr
    assert "# ok" not in result.stdout


def test_scenario_check_of_a_bad_file_exits_2(scenario_file, tmp_path) -> None:
    """A misspelt key: exit 2 with file, line and key path; no YAML printed."""
    bad = write_variant(scenario_file, tmp_path, "state: VIC", "stat: VIC")
    result = twin("scenario", "check", bad)
    assert result.exit_code == 2
    assert f"{bad}:{line_of(bad, 'stat: VIC')}: tenants[1].stat: unknown key" in result.stderr
    assert result.stdout == ""


def test_params_lists_every_source() -> None:
    """`twin params` prints one line per behaviour and economy parameter, with its source."""
    result = twin("params")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    expected = [(f"behaviour.{key}", source) for key, source in SOURCES.items()]
    expected += [(f"economy.{path}", source) for path, _value, source in parameter_rows()]
    assert len(lines) == len(expected)
    for line, (key, source) in zip(lines, expected, strict=True):
        assert line.split()[0] == key
        assert line.rstrip().endswith(source.strip())


def test_params_json_gives_defaults_and_sources() -> None:
    """`twin params --json`: every parameter with its default and its source."""
    result = twin("params", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    behaviour_rows = [row for row in rows if row["parameter"].startswith("behaviour.")]
    economy_rows = [row for row in rows if row["parameter"].startswith("economy.")]
    assert len(behaviour_rows) + len(economy_rows) == len(rows)
    assert [row["parameter"] for row in behaviour_rows] == [f"behaviour.{k}" for k in SOURCES]
    defaults = Behaviour().model_dump(mode="json")
    for row in behaviour_rows:
        key = row["parameter"].removeprefix("behaviour.")
        value = defaults
        for part in key.split("."):
            value = value[part]
        assert row["default"] == value
        assert row["source"] == SOURCES[key]
    macro = {f"economy.{path}": (value, source) for path, value, source in parameter_rows()}
    assert {row["parameter"] for row in economy_rows} == set(macro)
    for row in economy_rows:
        assert row["source"] == macro[row["parameter"]][1]


# --------------------------------------------------------------------------- end to end


def test_console_script_runs_and_verifies(scenario_file, small_run, tmp_path) -> None:
    """The installed `twin` script, in a fresh process with another hash seed: same run."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    ran = subprocess.run(
        [console_script(), "run", str(scenario_file), "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("PASS: ")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fingerprint"] == small_run.summary["fingerprint"]
    checked = subprocess.run(
        [console_script(), "verify", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines()[-1] == "PASS"


def test_console_script_exits_2_on_bad_input(tmp_path) -> None:
    """The installed script's exit code and message for a missing scenario file."""
    ran = subprocess.run(
        [console_script(), "run", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 2
    assert "no such scenario file" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert not (tmp_path / "o").exists()
