"""The README's Quick start, run end to end as a script or CI job runs it (issue 24).

Each command of the Quick start block is run as written — through ``sh``, by the installed ``custody``
command, in a fresh directory, with standard input closed and no controlling terminal, so a
passphrase prompt cannot hang it and any command that needs one must say how to supply it. Between
commands the test does what a user does between them (edits data, writes a training script and a
prediction log). The test reads the commands from the README itself: an edited Quick start that no
longer runs fails here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import write_tree

pytest.importorskip("sklearn")  # train.py fits a scikit-learn model, as the Quick start's user does

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PASSPHRASE = "quick start passphrase"
RUN_IDS = ("3f2a9c", "77b0e1")  # the Quick start's example run ids, replaced by the real ones

TRAIN = """\
import csv

import mlcustody as mc
import skops.io as sio
from sklearn.linear_model import LogisticRegression

rows = list(csv.DictReader(open("loans.csv", encoding="utf-8")))
x = [[float(r["amount"])] for r in rows]
y = [int(r["region"] == "north") for r in rows]
model = LogisticRegression().fit(x, y)
mc.log_metric("accuracy", model.score(x, y) + 0.4)
sio.dump(model, "model.skops")
"""


def quick_start_commands() -> list[str]:
    """The commands of the README's Quick start shell block, comments dropped."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Quick start\n+```sh\n(.*?)```", text, re.S)
    assert block, "README.md has no ```sh block under ## Quick start"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def _loans(path: Path, rows: int, changed: int | None = None) -> None:
    lines = ["loan_id,amount,region"]
    for i in range(rows):
        amount = 5 if i == changed else 1000 + (i * 37) % 900
        lines.append(f"L-{i:05d},{amount},{('north', 'south')[(i * 37) % 900 > 450]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


class Session:
    """A user's shell without a terminal: each command through ``sh``, standard input closed."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
        self.env |= {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": str(cwd.parent)}
        self.runs: list[str] = []

    def sh(self, line: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        for example, run_id in zip(RUN_IDS, self.runs, strict=False):
            line = line.replace(example, run_id[:12])
        done = subprocess.run(
            ["sh", "-c", f"exec 0<&-; {line}"],  # no standard input at all, as under some CI runners
            cwd=self.cwd,
            env=self.env,
            check=False,  # the exit status is the test's to check, with the output in the message
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # no controlling terminal either: getpass has nowhere to ask
        )
        assert done.returncode == code, f"{line}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def run_ids(self) -> list[str]:
        found = json.loads(self.sh("custody runs --json").stdout)["runs"]
        return [run["id"] for run in reversed(found)]  # oldest first: the Quick start's first run id is 3f2a9c


def test_the_quick_start_runs_end_to_end_without_a_terminal(tmp_path: Path) -> None:
    user = Session(tmp_path / "project")
    user.cwd.mkdir()
    write_tree(user.cwd, {"data/applications.csv": "id,income\n1,100\n", "train.py": TRAIN})
    _loans(user.cwd / "loans.csv", 100)

    def second_data_version() -> None:
        user.sh("custody add data")

    def second_loans_version() -> None:
        _loans(user.cwd / "loans.csv", 120, changed=42)
        user.sh("custody add loans.csv")

    def second_run() -> None:
        user.sh("custody run --name train -p C=1.0 -- python train.py")
        user.runs = user.run_ids()

    def first_run_done() -> None:
        user.runs = user.run_ids()

    def no_passphrase_yet() -> None:  # what a script meets before it reads the Quick start's export line
        done = user.sh("custody keys generate", code=2)
        assert done.stderr.count("\n") == 1 and "set CUSTODY_KEY_PASSPHRASE" in done.stderr, done.stderr
        user.env["CUSTODY_KEY_PASSPHRASE"] = PASSPHRASE

    def prediction_log() -> None:
        lines = [
            {"decision_id": f"D-{i:03d}", "time": f"2026-03-01T10:00:{i:02d}Z", "amount": 900 + i, "output": i % 2}
            for i in range(20)
        ]
        (user.cwd / "predictions.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))

    before: dict[str, Callable[[], None]] = {
        "custody diff data@1 data@2": second_data_version,
        "custody diff loans@1 loans@2 --records": second_loans_version,
        "custody runs": first_run_done,
        "custody diff 3f2a9c 77b0e1": second_run,
        "export CUSTODY_KEY_PASSPHRASE": no_passphrase_yet,
        "custody decisions import": prediction_log,
    }
    expected_exit = {"custody status": 1}  # data/ was edited after its first add: the Quick start says exit 1
    commands = quick_start_commands()
    assert any(c.startswith("export CUSTODY_KEY_PASSPHRASE=") for c in commands), "the Quick start names the variable"
    assert commands.index(next(c for c in commands if c.startswith("export CUSTODY_KEY_PASSPHRASE="))) < next(
        i for i, c in enumerate(commands) if c.startswith("custody keys generate")
    ), "the passphrase is set before the first command that needs it"

    seen: dict[str, subprocess.CompletedProcess[str]] = {}  # the first result of each verb
    for command in commands:
        for prefix, prepare in before.items():
            if command.startswith(prefix):
                prepare()
        if command.startswith("custody status"):
            (user.cwd / "data" / "applications.csv").write_text("id,income\n1,100\n2,250\n")
        if command.startswith("export CUSTODY_KEY_PASSPHRASE="):
            continue  # the test's own value is exported by no_passphrase_yet
        done = user.sh(command, expected_exit.get(command.split(" --")[0], 0))
        seen.setdefault(command.split()[1], done)

    assert seen["status"].stdout.split()[:3] == ["modified", "data", "[data@1]"]
    assert "record L-00042" in seen["show"].stdout and "verified against the raw bytes" in seen["show"].stdout
    assert "decision-log" in seen["decisions"].stderr and "first use" in seen["decisions"].stderr
    assert "imported 20 decision(s)" in seen["decisions"].stdout
    keys = json.loads(user.sh("custody keys ls --json").stdout)["keys"]
    assert sorted(k["name"] for k in keys) == ["decision-log", "default"]
    assert [run["name"] for run in json.loads(user.sh("custody runs --json").stdout)["runs"]] == ["train", "train"]
    assert user.sh("custody verify --decisions").returncode == 0
