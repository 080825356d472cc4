"""Debian packages by name through the host's apt, with no root needed.

Metadata comes from `apt-cache show --no-all-versions` (the candidate version: apt's own
pinning and priorities decide) and virtual names from `apt-cache showpkg`; files come from
`apt-get download` into a user cache directory. Each apt-cache run costs about a second
(it rebuilds its cache in memory), so lookups are batched: `lookup(names)` asks for many
names in one run and remembers the answers.

Listing every archive package would mean tens of thousands of entries; `packages()` lists
the packages looked up so far.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from app.errors import Cancelled, InputError, StageError
from app.packages.deb import info_from_control, parse_stanzas
from app.packages.model import PackageInfo, SourceKind, SourceSpec
from app.reporter import Level, Reporter
from app.tools import find_tool

APT_ENV = {"LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **APT_ENV}
    return subprocess.run(args, capture_output=True, text=True, env=env, check=False)


def host_architecture() -> str:
    out = _run([find_tool("dpkg"), "--print-architecture"])
    return out.stdout.strip() or "amd64"


def parse_reverse_provides(text: str) -> dict[str, list[str]]:
    """`apt-cache showpkg` output -> virtual name -> names of the packages that provide it."""
    result: dict[str, list[str]] = {}
    current = None
    in_provides = False
    for line in text.splitlines():
        if line.startswith("Package: "):
            current = line.split(":", 1)[1].strip()
            result.setdefault(current, [])
            in_provides = False
        elif line.startswith("Reverse Provides:"):
            in_provides = True
        elif in_provides and line.strip() and current is not None:
            if line.rstrip().endswith(":"):  # the next section's header
                in_provides = False
                continue
            name = line.split()[0]
            if name not in result[current]:
                result[current].append(name)
        elif not line.strip():
            in_provides = False
    return result


class AptSource:
    """The Debian archive as the host's apt sees it, or, with `apt_options`, as a private
    apt configuration sees it (compose.install.debian.ArchiveView: a profile's own suite)."""

    def __init__(
        self, spec: SourceSpec | None = None, *, apt_options: tuple[str, ...] = ()
    ) -> None:
        self.spec = spec or SourceSpec(SourceKind.APT)
        self.apt_options = apt_options
        self._known: dict[str, PackageInfo | None] = {}
        self._providers: dict[str, list[str]] = {}
        self._arch: str | None = None

    @property
    def arch(self) -> str:
        if self._arch is None:
            self._arch = host_architecture()
        return self._arch

    # -- metadata -------------------------------------------------------------------------
    def lookup(self, names: Iterable[str]) -> None:
        wanted = sorted({n for n in names if n and n not in self._known})
        if not wanted:
            return
        out = _run(
            [find_tool("apt-cache"), *self.apt_options, "show", "--no-all-versions", "--", *wanted]
        )
        if out.returncode not in (0, 100):
            raise StageError(f"apt-cache failed: {out.stderr.strip()}", stage="packages")
        for stanza in parse_stanzas(out.stdout):
            name = stanza.get("Package", "")
            arch = stanza.get("Architecture", "")
            if name not in wanted or arch not in (self.arch, "all"):
                continue
            if self._known.get(name) is None:
                size = int(stanza["Size"]) if stanza.get("Size", "").isdigit() else 0
                self._known[name] = info_from_control(
                    stanza, kind=SourceKind.APT, file=None, size=size
                )
        for name in wanted:
            self._known.setdefault(name, None)

    def get(self, name: str) -> PackageInfo | None:
        self.lookup([name])
        return self._known.get(name)

    def providers(self, name: str) -> list[PackageInfo]:
        if name not in self._providers:
            out = _run([find_tool("apt-cache"), *self.apt_options, "showpkg", "--", name])
            self._providers.update(parse_reverse_provides(out.stdout))
            self._providers.setdefault(name, [])
        names = self._providers[name]
        self.lookup(names)
        return [p for p in (self._known.get(n) for n in names) if p is not None]

    def packages(self) -> list[PackageInfo]:
        return sorted((p for p in self._known.values() if p is not None), key=lambda p: p.name)

    # -- files ----------------------------------------------------------------------------
    def fetch(self, pkg: PackageInfo, cache_dir: Path, reporter: Reporter) -> Path:
        """Download `pkg` (its exact version) with `apt-get download` into `cache_dir`."""
        apt_get = find_tool("apt-get")
        cache_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="apt-download-", dir=cache_dir))
        try:
            reporter.log(Level.INFO, f"downloading {pkg.name} {pkg.version} with apt-get")
            args = [apt_get, *self.apt_options, "download", "-q", "--", f"{pkg.name}={pkg.version}"]
            # stderr to a file, not a pipe nobody reads while waiting: a full pipe would
            # stop apt-get.
            with (
                tempfile.TemporaryFile() as errors_file,
                subprocess.Popen(
                    args,
                    cwd=work,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errors_file,
                    env={**os.environ, **APT_ENV},
                ) as proc,
            ):
                while proc.poll() is None:
                    if reporter.cancelled():
                        proc.terminate()
                        proc.wait()
                        raise Cancelled()
                    time.sleep(0.1)
                errors_file.seek(0)
                stderr = errors_file.read().decode(errors="replace")
            debs = sorted(work.glob("*.deb"))
            if proc.returncode != 0 or len(debs) != 1:
                errors = [
                    ln for ln in stderr.splitlines() if ln.startswith("E:")
                ] or stderr.strip().splitlines()[-3:]
                raise StageError(
                    f"apt-get could not download {pkg.name} {pkg.version}: " + " ".join(errors),
                    stage="gather",
                    hint="check the network and `apt-get update`",
                )
            target = cache_dir / debs[0].name
            os.replace(debs[0], target)
            return target
        finally:
            shutil.rmtree(work, ignore_errors=True)


def require_apt() -> None:
    """InputError unless this host has apt (a Debian/Ubuntu machine)."""
    for tool in ("apt-get", "apt-cache"):
        if shutil.which(tool) is None:
            raise InputError(
                "the 'apt' package source needs a Debian or Ubuntu host with apt",
                hint=f"'{tool}' was not found",
            )
