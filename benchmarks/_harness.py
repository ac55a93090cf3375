"""Shared helpers for the benchmarks in this folder.

Every benchmark here compares whole command-line runs (mlcustody against another tool and a plain
baseline), so the helpers are about processes, not functions: time a child from spawn to exit, take
the peak RSS of exactly that child, make incompressible data of a known size, and print a table.
Nothing here imports mlcustody: the benchmarks measure the installed CLI as a user would run it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

# Decimal units throughout, so "1 GB" of data and "1 GB/s" of throughput mean the same number.
KB = 1_000
MB = 1_000_000
GB = 1_000_000_000

_WRITE_CHUNK = 16 * 1024 * 1024
_OUTPUT_TAIL_CHARS = 4_000


@dataclass(frozen=True)
class RunResult:
    """One finished child process: wall time from spawn to exit, its peak RSS, and its output tails."""

    argv: tuple[str, ...]
    seconds: float
    peak_rss_bytes: int
    cpu_seconds: float  # user + system, of the command and the descendants it waited for
    contention: float  # CPUs kept busy by every other process meanwhile, on average (0.0 when quiet)
    returncode: int
    stdout_tail: str
    stderr_tail: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def failure_text(self) -> str:
        """A one-paragraph explanation of a failed run, for the report."""
        if self.timed_out:
            return f"timed out after {self.seconds:.0f} s: {' '.join(self.argv)}"
        detail = (self.stderr_tail or self.stdout_tail).strip().splitlines()[-5:]
        return f"exit {self.returncode}: {' '.join(self.argv)}: " + " | ".join(detail)


@dataclass(frozen=True)
class Summary:
    """Several runs of the same command, reduced the way the benchmarks report them.

    The minimum time is the least noisy estimate of what the command costs on a warm machine; the
    maximum peak RSS is reported because a memory budget has to hold on every run, not the best one.
    """

    runs: tuple[RunResult, ...]

    @property
    def best_seconds(self) -> float:
        return min(run.seconds for run in self.runs)

    @property
    def peak_rss_bytes(self) -> int:
        return max(run.peak_rss_bytes for run in self.runs)

    @property
    def max_contention(self) -> float:
        return max(run.contention for run in self.runs)


def _tail(handle: IO[bytes]) -> str:
    """The last few thousand characters a child wrote to a temporary file (its JSON may be large)."""
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - _OUTPUT_TAIL_CHARS))
    return handle.read().decode("utf-8", errors="replace")


# Run as ``python -I -S -c _LAUNCHER FD ARGV...``: a fresh, small interpreter that forks the command,
# reaps it with os.wait4 and writes "seconds peak_kib cpu_seconds exit_code" to FD. See run_measured for why.
_LAUNCHER = """\
import os, sys, time
report_fd, argv = int(sys.argv[1]), sys.argv[2:]
os.set_inheritable(report_fd, False)
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        os.write(2, f"cannot run {argv[0]}: {exc}\\n".encode())
    os._exit(127)
_, status, usage = os.wait4(pid, 0)
elapsed = time.perf_counter() - start
cpu = usage.ru_utime + usage.ru_stime
os.write(report_fd, f"{elapsed!r} {usage.ru_maxrss} {cpu!r} {os.waitstatus_to_exitcode(status)}".encode())
"""


def run_measured(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> RunResult:
    """Run ``argv`` to completion, timing the whole process and taking its peak RSS.

    ``os.wait4`` gives the resource usage of exactly this child (with the descendants it reaped,
    such as the git processes DVC starts), whereas ``RUSAGE_CHILDREN`` would fold in every child the
    benchmark ever waited for. It is called in a tiny launcher, not here, because Linux carries the
    parent's RSS high-water mark into a child across fork/vfork and exec: spawned straight from this
    process, even ``true`` would report the benchmark's own peak (100 MB and more after making data).
    From the launcher the floor is ~5 MB. Output goes to temporary files, not pipes, so a chatty
    child never blocks on a full pipe.
    """
    read_fd, write_fd = os.pipe()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, os.fdopen(read_fd, "rb") as report:
        try:
            launcher = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(write_fd), *argv],
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                pass_fds=(write_fd,),
                start_new_session=True,  # one process group to kill on a time-out
            )
        finally:
            os.close(write_fd)
        started, busy_before, own_before = time.perf_counter(), cpu_busy_seconds(), _own_cpu_seconds()
        timed_out = _wait_or_kill(launcher, timeout)
        others = cpu_busy_seconds() - busy_before - (_own_cpu_seconds() - own_before)
        window = time.perf_counter() - started
        fields = report.read().split()
        if len(fields) == 4 and not timed_out:
            seconds, peak_kib, cpu_seconds = float(fields[0]), int(fields[1]), float(fields[2])
            returncode = int(fields[3])
        else:  # killed, or the launcher itself failed
            seconds, peak_kib, cpu_seconds = time.perf_counter() - started, 0, 0.0
            returncode = launcher.returncode
        return RunResult(
            argv=tuple(argv),
            seconds=seconds,
            peak_rss_bytes=peak_kib * 1024,  # Linux reports kibibytes
            cpu_seconds=cpu_seconds,
            contention=max(0.0, others) / window if window > 0 else 0.0,
            returncode=returncode,
            stdout_tail=_tail(out),
            stderr_tail=_tail(err),
            timed_out=timed_out,
        )


def _own_cpu_seconds() -> float:
    """CPU used by this process and its reaped children (the launcher, and through it the command)."""
    usages = (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    return sum(usage.ru_utime + usage.ru_stime for usage in usages)


def _wait_or_kill(proc: subprocess.Popen[bytes], timeout: float | None) -> bool:
    """Wait for ``proc``; on a time-out or an interrupt kill its process group. True if timed out."""
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        if proc.returncode is None:  # timed out, or Ctrl-C: take the measured command down too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return timed_out


def find_executable(name: str) -> Path | None:
    """Locate a console script on PATH, else next to the running interpreter.

    The second place covers running ``venv/bin/python benchmarks/...`` without activating the venv,
    where the tools installed by ``pip install '.[bench]'`` sit beside the interpreter but not on PATH.
    """
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    beside = Path(sys.executable).parent / name
    return beside if beside.is_file() and os.access(beside, os.X_OK) else None


def write_random_file(path: Path, size: int) -> None:
    """Write ``size`` bytes from ``os.urandom``: incompressible, and unique so no tool can dedupe it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        remaining = size
        while remaining > 0:
            chunk = min(remaining, _WRITE_CHUNK)
            handle.write(os.urandom(chunk))
            remaining -= chunk


def make_random_tree(root: Path, file_count: int, file_size: int, files_per_dir: int = 1_000) -> None:
    """Create ``file_count`` random files of ``file_size`` bytes under ``root``.

    Files are sharded into subdirectories of ``files_per_dir`` as real datasets usually are; a single
    flat directory of 100,000 entries would mostly measure the file system's directory handling.
    """
    for index in range(file_count):
        shard = root / f"d{index // files_per_dir:04d}"
        write_random_file(shard / f"f{index:07d}.bin", file_size)


def copy_tree(source: Path, destination: Path) -> None:
    """Untimed setup copy. ``cp -r`` because it is several times faster than ``shutil.copytree``
    on 100,000 small files, and a plain copy (no hard links) so no tool can touch another's inodes."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-r", str(source), str(destination)], check=True)


def drop_tree(path: Path) -> None:
    """Remove a workspace; benchmarks call this between sides to keep the disk footprint bounded.

    ``rm -rf`` because ``shutil.rmtree`` takes minutes on the 200,000-odd files of a small-file case.
    """
    if path.exists():
        subprocess.run(["rm", "-rf", "--", str(path)], check=True)


def flush_dirty_pages() -> None:
    """Write back dirty pages before a timed command while keeping them cached.

    Without this, writeback of the setup copy would compete with the measured command for the disk.
    Dropping the page cache needs root, so every side runs warm, on data that was just written.
    """
    os.sync()


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.2f} s" if seconds < 100 else f"{seconds:.0f} s"


def fmt_bytes(count: float | None) -> str:
    """Decimal units, matching the targets ("300 MB", "1 GB")."""
    if count is None:
        return "—"
    for unit, size in (("GB", GB), ("MB", MB), ("kB", KB)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count:.0f} B"


def fmt_ratio(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.2f}×"


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when either side was not measured."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def render_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A plain-text table with left-aligned columns; Markdown-free so it reads well in a terminal."""
    materialized = [list(headers), *(list(row) for row in rows)]
    widths = [max(len(row[col]) for row in materialized) for col in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in materialized
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def machine_info() -> dict[str, object]:
    """What the numbers were measured on, for the JSON report (no host names)."""
    return {
        "cpus": os.cpu_count(),
        "system": platform.system(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }


def cpu_busy_seconds() -> float:
    """CPU time all processes on the machine have used since boot (user, system, irq…; not idle or
    iowait), from /proc/stat; 0.0 where it cannot be read.

    The difference over a run, minus the run's own CPU time, is what *other* processes took meanwhile:
    on a shared 2-core development machine that is the main source of noise, so it is reported.
    """
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = sum(fields[3:5])  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # guest time is already in user


def _first_line(argv: Sequence[str]) -> str | None:
    """The first line a quick informational command prints, or None if it fails or says nothing."""
    try:
        done = subprocess.run(list(argv), check=False, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if done.returncode == 0 and lines else None


def tool_version(executable: Path, *args: str) -> str | None:
    """What a tool prints for its version flag, or None if it will not say."""
    return _first_line([str(executable), *args])


def source_revision(directory: Path) -> str | None:
    """``git describe --always --dirty`` of the checkout holding ``directory``, or None outside git."""
    return _first_line(["git", "-C", str(directory), "describe", "--always", "--dirty"])


DEFAULT_TIMEOUT_S = 3600.0


def new_parser(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's argument parser, described by the first line of its module docstring."""
    summary = (doc or "").partition("\n")[0]
    return argparse.ArgumentParser(description=summary, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_only_option(parser: argparse.ArgumentParser, cases: Sequence[str]) -> None:
    parser.add_argument("--only", metavar="KEYS", help=f"a subset of cases: {','.join(cases)}")


def chosen_cases(parser: argparse.ArgumentParser, only: str | None, cases: Sequence[str]) -> list[str]:
    """The cases ``--only`` names (all when it is not given); an unknown one is a usage error."""
    chosen = [c.strip() for c in only.split(",") if c.strip()] if only else list(cases)
    if unknown := set(chosen) - set(cases):
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}; choose from {', '.join(cases)}")
    return chosen


def add_common_options(parser: argparse.ArgumentParser, *, workdir_help: str) -> None:
    """The options every benchmark takes: where to work, where to write numbers, keep, time-out."""
    parser.add_argument("--workdir", type=Path, help=workdir_help)
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the raw numbers here")
    parser.add_argument("--keep", action="store_true", help="keep data and workspaces (with --workdir)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"kill a single command after S seconds (default {DEFAULT_TIMEOUT_S:.0f})",
    )


TARGET_FIELDS = ("case", "what", "target", "measured", "met", "value")


def targets_json(rows: Iterable[Sequence[object]]) -> list[dict[str, object]]:
    """Target rows (case, what, target, measured, "yes"/"NO"/"—", value) as JSON objects; met is a bool or null."""
    return [
        dict(zip(TARGET_FIELDS, (*row[:4], row[4] == "yes" if row[4] != "—" else None, row[5]), strict=True))
        for row in rows
    ]
