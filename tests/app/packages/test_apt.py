"""The host-apt source against the real Debian archive (apt-cache, apt-get download)."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
from pathlib import Path

import pytest

from app.compose.assemble import assemble_root
from app.errors import StageError
from app.packages.apt import AptSource, parse_reverse_provides
from app.packages.gather import gather
from app.packages.model import SourceKind
from app.packages.resolve import resolve
from app.packages.sources import detect_source, open_source
from app.reporter import NullReporter, RecordingReporter
from tests.support.debian import resolve_kernel_package


@pytest.fixture(scope="module")
def apt() -> AptSource:
    source = open_source(detect_source("apt"))
    assert isinstance(source, AptSource)
    return source


def _candidate(name: str) -> str:
    out = subprocess.run(
        ["apt-cache", "policy", name], capture_output=True, text=True, check=True
    ).stdout
    return next(
        line.split(":", 1)[1].strip()
        for line in out.splitlines()
        if line.strip().startswith("Candidate:")
    )


def test_metadata_is_the_candidate_version(apt: AptSource) -> None:
    pkg = apt.get("busybox-static")
    assert pkg is not None and pkg.kind is SourceKind.APT
    assert pkg.version == _candidate("busybox-static")
    assert pkg.provides == ("busybox",) and pkg.size > 500_000
    assert pkg.checksum is not None and pkg.checksum.startswith("sha256:")
    assert "busybox-static" in [p.name for p in apt.packages()]


def test_the_kernel_metapackage_resolves_to_the_versioned_kernel(apt: AptSource) -> None:
    real = resolve_kernel_package()  # what `apt-cache depends` says
    res = resolve(apt, ["busybox-static", "linux-image-amd64"], follow_dependencies=False)
    assert res.names == ["busybox-static", real, "linux-image-amd64"]
    assert res.reasons[real] == f"linux-image-amd64 → {real}"
    assert res.ok
    kernel = res.get(real)
    assert kernel is not None and kernel.size > 10_000_000 and not kernel.metapackage


def test_virtual_names_have_providers(apt: AptSource) -> None:
    names = [p.name for p in apt.providers("awk")]
    assert "mawk" in names
    text = (
        "Package: awk\nVersions: \n\nReverse Depends: \n  x,awk\nDependencies: \n"
        "Provides: \nReverse Provides: \nmawk 1.3.4 (= )\ngawk 1:5.2.1-2 (= )\n"
    )
    assert parse_reverse_provides(text) == {"awk": ["mawk", "gawk"]}


def test_unknown_names_are_reported(apt: AptSource) -> None:
    res = resolve(apt, ["no-such-package-livesmith"])
    assert res.unknown == ("no-such-package-livesmith",) and res.packages == ()


def test_real_download_is_verified_cached_and_extracted(apt: AptSource, tmp_path: Path) -> None:
    res = resolve(apt, ["busybox-static"], follow_dependencies=False)
    cache = tmp_path / "cache"
    reporter = RecordingReporter()
    [(pkg, path)] = gather(apt, res, cache, reporter)
    assert path.is_relative_to(cache / "by-hash") and path.suffix == ".deb"
    assert pkg.checksum == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert any("apt-get" in msg for _, msg in reporter.logs)
    assert list((cache / "downloads").glob("*")) == []
    # warm cache: no second download
    quiet = RecordingReporter()
    assert gather(apt, res, cache, quiet) == [(pkg, path)]
    assert not any("apt-get" in msg for _, msg in quiet.logs)

    manifest = assemble_root([(pkg, path)], tmp_path / "root", NullReporter())
    busybox = tmp_path / "root" / "bin" / "busybox"
    out = subprocess.run([str(busybox), "echo", "from apt"], capture_output=True, text=True)
    assert out.stdout == "from apt\n"
    assert manifest.get("bin/busybox").owner == "busybox-static"  # type: ignore[union-attr]


def test_download_failure_is_explained(apt: AptSource, tmp_path: Path) -> None:
    real = apt.get("busybox-static")
    assert real is not None
    bogus = dataclasses.replace(real, version="0.0-livesmith-missing", checksum=None)
    with pytest.raises(StageError, match="apt-get could not download busybox-static"):
        apt.fetch(bogus, tmp_path / "dl", NullReporter())
    assert list((tmp_path / "dl").iterdir()) == []


def test_a_name_that_looks_like_an_option_is_only_a_name() -> None:
    # Without "--" apt-cache takes it as an option (another architecture), and the real
    # package looked up in the same call is then not found.
    fresh = AptSource()
    fresh.lookup(["-oAPT::Architecture=foo", "mawk"])
    assert fresh.get("-oAPT::Architecture=foo") is None
    assert fresh.get("mawk") is not None
    assert fresh.providers("-oAPT::Architecture=foo") == []
