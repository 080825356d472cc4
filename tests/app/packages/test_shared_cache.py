"""Builds running at the same time share one package cache (separate real processes)."""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.childproc import child_env
from app.errors import Cancelled
from app.packages.gather import file_digest, gather, split_checksum
from app.packages.resolve import resolve
from app.packages.sources import detect_source, open_source
from app.reporter import NullReporter
from tests.app.packages.fixtures import (
    busybox_package,
    local_apt,
    make_deb_folder,
    make_glaucus_repo,
    text_package,
)

ROOT = Path(__file__).resolve().parents[3]
BUILDS = 4
# Big enough that copying one takes a while: the builds overlap inside each step.
PACKAGES = [busybox_package(depends=tuple(f"data{i}" for i in range(8)))] + [
    text_package(f"data{i}", files={f"usr/share/data{i}": os.urandom(1 << 20).hex()})
    for i in range(8)
]


def _gather_together(
    location: str, cache: Path, tmp: Path, env: dict[str, str]
) -> list[dict[str, Path]]:
    """Run BUILDS gather children on one cache, released at one moment; their results."""
    go = tmp / "go"
    children = []
    for number in range(BUILDS):
        ready = tmp / f"ready-{number}"
        args = [location, str(cache), str(ready), str(go), "busybox"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.app.packages.gather_child", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        children.append((ready, proc))
    deadline = time.monotonic() + 60
    while not all(ready.exists() for ready, _ in children):
        assert all(proc.poll() is None for _, proc in children), "a child ended early"
        assert time.monotonic() < deadline, "the children did not get ready"
        time.sleep(0.01)
    go.touch()
    results = []
    for _, proc in children:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append({name: Path(path) for name, path in json.loads(out)})
    return results


def _check_cache(location: str, cache: Path, results: list[dict[str, Path]]) -> None:
    """Every build got every package, all the same intact cached files, nothing left over."""
    source = open_source(detect_source(location))
    assert results[0].keys() == {"busybox", *(f"data{i}" for i in range(8))}
    assert all(result == results[0] for result in results)
    for name, path in results[0].items():
        pkg = source.get(name)
        assert pkg is not None and pkg.checksum is not None
        algorithm, digest = split_checksum(pkg.checksum)
        assert path.parent.name == f"{algorithm}-{digest}"
        assert file_digest(path, algorithm) == digest
    # no staging folders left; the lock file exists only if an entry had to be replaced
    entries = {entry.name for entry in (cache / "by-hash").iterdir()} - {".lock"}
    assert entries == {path.parent.name for path in results[0].values()}
    assert list((cache / "downloads").iterdir()) == []


def test_concurrent_gathers_from_a_folder_share_an_empty_cache(tmp_path: Path) -> None:
    repo = str(make_glaucus_repo(tmp_path, PACKAGES))
    cache = tmp_path / "cache"
    results = _gather_together(repo, cache, tmp_path, child_env())
    _check_cache(repo, cache, results)


def test_concurrent_gathers_replace_damaged_entries_once(tmp_path: Path) -> None:
    repo = str(make_glaucus_repo(tmp_path, PACKAGES))
    cache = tmp_path / "cache"
    source = open_source(detect_source(repo))
    for _, cached in gather(source, resolve(source, ["busybox"]), cache, NullReporter()):
        cached.write_bytes(b"bit rot")
    results = _gather_together(repo, cache, tmp_path, child_env())
    _check_cache(repo, cache, results)


@pytest.fixture
def local_apt_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """apt (here and in child processes) sees only a local repository of PACKAGES."""
    repo = make_deb_folder(tmp_path, PACKAGES, with_index=True)
    monkeypatch.setenv("APT_CONFIG", str(local_apt(tmp_path, f"copy:{repo}")))


@pytest.mark.usefixtures("local_apt_repo")
def test_concurrent_apt_downloads_share_an_empty_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    results = _gather_together("apt", cache, tmp_path, child_env())
    _check_cache("apt", cache, results)


class _StallingRepository(http.server.SimpleHTTPRequestHandler):
    """Serves a folder, but sends only the first half of a .deb and then waits."""

    half_sent: threading.Event
    release: threading.Event

    def do_GET(self) -> None:
        if not self.path.endswith(".deb"):
            super().do_GET()
            return
        data = (Path(self.directory) / Path(self.path).name).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.half_sent.set()
        self.release.wait(30)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def stalling_apt_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[type]:
    repo = make_deb_folder(tmp_path, PACKAGES[1:2], with_index=True)
    handler = type(
        "Handler",
        (_StallingRepository,),
        {"half_sent": threading.Event(), "release": threading.Event()},
    )
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(repo))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("APT_CONFIG", str(local_apt(tmp_path, url)))
    try:
        yield handler
    finally:
        handler.release.set()
        server.shutdown()
        server.server_close()


class _CancelWhen(NullReporter):
    """Cancels once `event` is set (the user presses Cancel during the download)."""

    def __init__(self, event: threading.Event) -> None:
        super().__init__()
        self.event = event

    def cancelled(self) -> bool:
        return self.event.is_set()


def test_an_interrupted_download_leaves_nothing_under_its_name(
    tmp_path: Path, stalling_apt_repo: type
) -> None:
    source = open_source(detect_source("apt"))
    resolution = resolve(source, ["data0"])
    cache = tmp_path / "cache"
    reporter = _CancelWhen(stalling_apt_repo.half_sent)  # type: ignore[attr-defined]
    with pytest.raises(Cancelled):
        gather(source, resolution, cache, reporter)
    assert stalling_apt_repo.half_sent.is_set()  # type: ignore[attr-defined]
    assert [p for p in cache.rglob("*") if p.name != "downloads"] == []
