"""A build in a child process (what the GUI runs): real RAM-mode builds of fixture packages,
relayed steps and logs, cancel, a parent that goes away, a child that dies."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from app.childproc import child_env
from app.compose.isolated import (
    build_job,
    build_result_from_json,
    build_result_to_json,
    run_build_isolated,
)
from app.compose.pipeline import STAGES, BuildResult
from app.compose.profile import Profile, RootImageFormat, builtin_profiles, profile_from_dict
from app.errors import Cancelled, StageError, ValidationError
from app.frames import FrameReader, error_from_json, frame, parse_message
from app.reporter import Level, RecordingReporter
from tests.support.children import ActAt, child_pids
from tests.support.live_fixtures import live_glaucus_repo, live_profile

TITLES = ["Validate", *(stage.title for stage in STAGES)]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return live_glaucus_repo(tmp_path_factory.mktemp("repo"))


def ram_profile(repo: Path, **system: str) -> Profile:
    return live_profile(repo, fmt=RootImageFormat.RAM, **system)


def test_the_job_and_the_result_cross_as_json_unchanged(repo: Path, tmp_path: Path) -> None:
    for profile in [ram_profile(repo, hostname="bad host!"), *builtin_profiles().values()]:
        job = build_job(profile, tmp_path / "live.iso", cache_dir=tmp_path / "cache")
        sent = parse_message(frame(job)[4:])  # what the child reads
        assert profile_from_dict(sent["profile"]) == profile
        assert sent["output"] == str(tmp_path / "live.iso") and sent["work_dir"] is None
    result = BuildResult(tmp_path / "live.iso", "ab" * 32, 123, "id", 1.5, (("validate", 0.25),))
    done = parse_message(frame({"kind": "done", "result": build_result_to_json(result)})[4:])
    assert build_result_from_json(done["result"]) == result


def test_a_build_in_the_child_gives_the_iso_and_relays_steps_and_logs(
    repo: Path, tmp_path: Path
) -> None:
    reporter = RecordingReporter()
    out = tmp_path / "live.iso"
    result = run_build_isolated(ram_profile(repo), out, reporter, cache_dir=tmp_path / "cache")
    assert isinstance(result, BuildResult) and result.iso == out
    assert result.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert reporter.steps == TITLES
    assert any(level is Level.INFO and "BusyBox applets" in text for level, text in reporter.logs)
    assert reporter.last_progress is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "live.iso", "live.iso.sha256"]
    assert child_pids("app.compose.isolated") == []


def kill_the_build_child(_: ActAt) -> None:
    for pid in child_pids("app.compose.isolated"):
        os.kill(pid, signal.SIGKILL)


def test_a_cancel_stops_the_very_step_it_was_made_in_and_cleans_up(
    repo: Path, tmp_path: Path
) -> None:
    reporter = ActAt("Make the initramfs", ActAt.cancel)
    out = tmp_path / "live.iso"
    with pytest.raises(Cancelled):
        run_build_isolated(ram_profile(repo), out, reporter, cache_dir=tmp_path / "cache")
    # The child waits at each step until the parent has relayed it (and said "cancel"):
    # no later stage starts, however fast the initramfs is.
    assert reporter.steps[-1] == "Make the initramfs"
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
    assert child_pids("app.compose.isolated") == []


def test_problems_found_in_the_child_arrive_as_the_same_validation_error(
    repo: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError) as caught:
        run_build_isolated(
            ram_profile(repo, hostname="bad host!"),
            tmp_path / "live.iso",
            RecordingReporter(),
            cache_dir=tmp_path / "cache",
        )
    assert ("hostname", "'bad host!' is not a valid host name") in [
        (p.where, p.message) for p in caught.value.problems
    ]
    assert not (tmp_path / "live.iso").exists()


def test_a_child_that_dies_is_a_stage_error_and_its_scratch_folder_is_removed(
    repo: Path, tmp_path: Path
) -> None:
    earlier = tmp_path / "live.iso"
    earlier.write_bytes(b"an earlier build's ISO")
    with pytest.raises(
        StageError,
        match=r"the build of live.iso stopped unexpectedly "
        r"\(exit status -9\)",
    ):
        run_build_isolated(
            ram_profile(repo),
            tmp_path / "live.iso",
            ActAt("Configure the system", kill_the_build_child),
            cache_dir=tmp_path / "cache",
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "live.iso"]
    assert earlier.read_bytes() == b"an earlier build's ISO"  # not this build's: kept
    assert child_pids("app.compose.isolated") == []


def test_an_iso_the_dead_child_left_unchecked_is_removed(repo: Path, tmp_path: Path) -> None:
    # Killed once the ISO is in place but before its check: it and its checksum file go, as
    # does a .part file of an unfinished mastering (named as app.iso.master names it).
    def plant_part_file_and_kill(reporter: ActAt) -> None:
        assert (tmp_path / "live.iso").is_file()
        (tmp_path / ".live.iso.0badc0de.part").write_bytes(b"half an ISO")
        kill_the_build_child(reporter)

    with pytest.raises(StageError, match="stopped unexpectedly"):
        run_build_isolated(
            ram_profile(repo),
            tmp_path / "live.iso",
            ActAt("Checksum and structure check", plant_part_file_and_kill),
            cache_dir=tmp_path / "cache",
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_a_build_folder_the_user_gave_is_emptied_not_removed_after_a_death(
    repo: Path, tmp_path: Path
) -> None:
    work = tmp_path / "my-build-folder"
    work.mkdir()
    with pytest.raises(StageError, match="stopped unexpectedly"):
        run_build_isolated(
            ram_profile(repo),
            tmp_path / "live.iso",
            ActAt("Configure the system", kill_the_build_child),
            cache_dir=tmp_path / "cache",
            work_dir=work,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "my-build-folder"]
    assert list(work.iterdir()) == []


def test_when_the_parent_goes_away_the_child_cancels_and_cleans_up(
    repo: Path, tmp_path: Path
) -> None:
    # Play the parent by hand: send the job, answer the first steps, then close the pipe
    # mid-build as a parent that crashed would.
    out = tmp_path / "live.iso"
    child = subprocess.Popen(
        [sys.executable, "-m", "app.compose.isolated"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=child_env(),
    )
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(frame(build_job(ram_profile(repo), out, cache_dir=tmp_path / "cache")))
    child.stdin.flush()
    reader = FrameReader(child.stdout.fileno())
    steps = []
    while (message := reader.next()) is not None:
        if message["kind"] == "step":
            steps.append(message["name"])
            if message["name"] == "Configure the system":
                child.stdin.close()
                continue
            child.stdin.write(frame({"kind": "ack"}))
            child.stdin.flush()
        if message["kind"] in ("done", "failed"):
            break
    assert message is not None and message["kind"] == "failed"
    assert isinstance(error_from_json(message["error"]), Cancelled)
    assert child.wait(60) == 0
    child.stdout.close()
    assert steps[-1] == "Configure the system"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_a_child_without_a_job_says_so(tmp_path: Path) -> None:
    child = subprocess.run(
        [sys.executable, "-m", "app.compose.isolated"],
        input=b"",
        capture_output=True,
        env=child_env(),
        timeout=60,
    )
    assert child.returncode == 1
    reader_r, reader_w = os.pipe()
    os.write(reader_w, child.stdout)
    os.close(reader_w)
    message = FrameReader(reader_r).next()
    os.close(reader_r)
    assert message is not None and message["kind"] == "failed"
    error = error_from_json(message["error"])
    assert type(error) is StageError and str(error) == "build: no build was asked for"


def test_keep_work_keeps_the_build_folder_of_a_dead_child(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(StageError, match="stopped unexpectedly"):
        run_build_isolated(
            ram_profile(repo),
            tmp_path / "live.iso",
            ActAt("Configure the system", kill_the_build_child),
            cache_dir=tmp_path / "cache",
            keep_work=True,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == [".live.iso.build", "cache"]
