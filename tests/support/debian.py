"""Real Debian packages for tests, fetched once with `apt-get download` and cached.

The cache lives outside the repo (~/.cache/livesmith-tests/debs, or $LIVESMITH_TEST_CACHE),
so reruns and CI re-use it; nothing binary is committed.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

CACHE = Path(os.environ.get("LIVESMITH_TEST_CACHE", Path.home() / ".cache" / "livesmith-tests"))


def cache_dir(*parts: str) -> Path:
    path = CACHE.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def resolve_kernel_package(meta: str = "linux-image-amd64") -> str:
    """The versioned kernel package that the meta package depends on (e.g. linux-image-6.1.0-28-amd64)."""
    out = subprocess.run(["apt-cache", "depends", meta], capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        line = line.strip()
        if line.startswith("Depends:"):
            name = line.split(":", 1)[1].strip()
            if name.startswith("linux-image-") and not name.endswith("-unsigned"):
                return name
    raise RuntimeError(f"no linux-image dependency found for {meta}:\n{out.stdout}")


def debian_package(name: str) -> Path:
    """Path of the cached .deb for `name` (downloaded with apt-get download if missing)."""
    debs = cache_dir("debs")
    with open(debs / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # helpers and parallel tests share the cache
        found = sorted(debs.glob(f"{name}_*.deb"))
        if found:
            return found[-1]
        subprocess.run(
            ["apt-get", "download", "-q", name], cwd=debs, check=True, capture_output=True
        )
        found = sorted(debs.glob(f"{name}_*.deb"))
        if not found:
            raise RuntimeError(f"apt-get download {name} produced no .deb in {debs}")
        return found[-1]


def extracted_package(name: str) -> Path:
    """The package's files unpacked (dpkg-deb -x) into a cached directory."""
    deb = debian_package(name)
    dest = cache_dir("unpacked", deb.stem)
    marker = dest / ".complete"
    with open(cache_dir("unpacked") / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
            marker.touch()
    return dest


def kernel_tree() -> tuple[Path, Path, str]:
    """(vmlinuz, modules dir, kernel version) from the real Debian kernel package."""
    root = extracted_package(resolve_kernel_package())
    vmlinuz = sorted((root / "boot").glob("vmlinuz-*"))[-1]
    version = vmlinuz.name.removeprefix("vmlinuz-")
    modules = root / "lib" / "modules" / version
    return vmlinuz, modules, version


def busybox_static() -> Path:
    return extracted_package("busybox-static") / "bin" / "busybox"


def packaged_file(package: str, name: str) -> Path:
    """A file a Debian package ships, found by its name in the unpacked package
    (e.g. ("ipxe", "ipxe.iso"), ("grub-rescue-pc", "grub-rescue-cdrom.iso")); the package is
    downloaded with apt-get, not installed, so no root is needed."""
    root = extracted_package(package)
    found = sorted(p for p in root.rglob(name) if p.is_file() and not p.is_symlink())
    if not found:
        raise RuntimeError(f"the package {package} ships no file named {name} (in {root})")
    return found[0]


def ipxe_iso() -> Path:
    return packaged_file("ipxe", "ipxe.iso")


def grub_rescue_iso() -> Path:
    return packaged_file("grub-rescue-pc", "grub-rescue-cdrom.iso")


def script_package(
    repo: Path,
    name: str,
    postinst: str,
    *,
    version: str = "1.0",
    depends: str = "",
    index: bool = True,
) -> None:
    """A .deb with a postinst, built by dpkg-deb, in the flat repository `repo`."""
    stage = repo.parent / f"stage-{name}"
    (stage / "DEBIAN").mkdir(parents=True)
    (stage / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        + (f"Depends: {depends}\n" if depends else "")
        + "Maintainer: Livesmith Tests <tests@example.org>\nDescription: test package\n"
        " with a long description\n .\n over two paragraphs\n"
    )
    script = stage / "DEBIAN" / "postinst"
    script.write_text("#!/bin/bash\n" + postinst)
    script.chmod(0o755)
    repo.mkdir(exist_ok=True)
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(stage), str(repo / f"{name}.deb")],
        check=True,
        capture_output=True,
    )
    if not index:
        return
    packages = subprocess.run(
        ["dpkg-scanpackages", "--multiversion", "."], cwd=repo, capture_output=True, check=True
    ).stdout
    (repo / "Packages").write_bytes(packages)
