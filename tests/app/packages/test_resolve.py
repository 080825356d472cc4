"""Dependency resolution over real package folders of each format."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.packages.model import PackageSource
from app.packages.resolve import resolve
from app.packages.sources import detect_source, open_source
from tests.app.packages.fixtures import (
    FixturePackage,
    busybox_package,
    make_arch_folder,
    make_deb_folder,
    make_glaucus_repo,
    text_package,
)


def _source(tmp: Path, pkgs: list[FixturePackage], fmt: str = "arch") -> PackageSource:
    maker = {
        "arch": make_arch_folder,
        "glaucus": make_glaucus_repo,
        "deb": lambda t, p: make_deb_folder(t, p, builder="python"),
    }[fmt]
    return open_source(detect_source(str(maker(tmp, pkgs))))


def test_glaucus_run_dependencies_are_followed_transitively(tmp_path: Path) -> None:
    source = _source(
        tmp_path,
        [
            text_package("kmod", depends=("musl", "zstd")),
            text_package("zstd", depends=("musl",)),
            text_package("musl"),
            text_package("unrelated"),
        ],
        "glaucus",
    )
    res = resolve(source, ["kmod"])
    assert res.names == ["musl", "zstd", "kmod"]  # dependencies first
    assert res.reasons == {
        "kmod": "selected",
        "zstd": "required by kmod",
        "musl": "required by kmod",
    }
    assert res.ok and res.problems() == []


def test_arch_provides_and_version_constraints(tmp_path: Path) -> None:
    source = _source(
        tmp_path,
        [
            text_package("app", depends=("sh", "glibc>=2.3")),
            text_package("glibc", "2.38"),
            text_package("bash", depends=("glibc",), provides=("sh",)),
        ],
    )
    res = resolve(source, ["app"])
    assert set(res.names) == {"app", "glibc", "bash"}
    assert res.names.index("bash") < res.names.index("app")
    assert res.reasons["bash"] == "required by app"


def test_a_selected_provider_is_preferred(tmp_path: Path) -> None:
    source = _source(
        tmp_path,
        [
            text_package("app", depends=("sh",)),
            text_package("bash", provides=("sh",)),
            busybox_package(provides=("sh",)),
        ],
    )
    res = resolve(source, ["app", "busybox"])
    assert "bash" not in res.names and set(res.names) == {"app", "busybox"}


def test_debian_alternatives_take_the_first_available(tmp_path: Path) -> None:
    source = _source(
        tmp_path,
        [
            text_package(
                "kernel", depends=("initramfs-tools (>= 0.120) | linux-initramfs-tool", "kmod")
            ),
            text_package("dracut", provides=("linux-initramfs-tool",)),
            text_package("kmod"),
        ],
        "deb",
    )
    res = resolve(source, ["kernel"])
    assert res.names == ["dracut", "kmod", "kernel"]
    assert res.missing == ()


def test_missing_dependencies_name_who_needs_them(tmp_path: Path) -> None:
    source = _source(
        tmp_path,
        [
            text_package("app", depends=("libgone", "libok")),
            text_package("libok", depends=("libalsogone",)),
        ],
    )
    res = resolve(source, ["app"])
    assert set(res.missing) == {("libgone", "app"), ("libalsogone", "libok")}
    assert not res.ok
    text = " ".join(str(p) for p in res.problems("arch:/x"))
    assert "package app: needs libgone" in text and "package libok: needs libalsogone" in text


def test_unknown_selection(tmp_path: Path) -> None:
    res = resolve(_source(tmp_path, [text_package("a")]), ["a", "nope", "a"])
    assert res.names == ["a"] and res.unknown == ("nope",)
    assert "package nope: no such package" in str(res.problems()[0])


def test_declared_conflicts_name_both_packages(tmp_path: Path) -> None:
    source = _source(
        tmp_path,
        [
            busybox_package(conflicts=("toybox",)),
            text_package("toybox", provides=("sh",)),
            text_package("dash", conflicts=("sh",)),
        ],
    )
    res = resolve(source, ["busybox", "toybox", "dash"])
    assert set(res.conflicts) == {("busybox", "toybox"), ("dash", "toybox")}
    messages = [str(p) for p in res.problems()]
    assert "package busybox: conflicts with package toybox; select only one" in messages


def test_conflict_with_own_provided_name_is_not_a_conflict(tmp_path: Path) -> None:
    # busybox-static: Provides: busybox, Conflicts: busybox
    source = _source(
        tmp_path,
        [text_package("busybox-static", provides=("busybox",), conflicts=("busybox",))],
        "deb",
    )
    assert resolve(source, ["busybox-static"]).conflicts == ()


def test_cycles_terminate(tmp_path: Path) -> None:
    source = _source(
        tmp_path, [text_package("a", depends=("b",)), text_package("b", depends=("a",))]
    )
    res = resolve(source, ["a"])
    assert sorted(res.names) == ["a", "b"] and res.ok


def test_without_following_only_metapackages_lead_on(tmp_path: Path) -> None:
    source = _source(
        tmp_path,
        [
            text_package(
                "kernel-meta",
                description="Linux for 64-bit PCs (meta-package)",
                depends=("kernel-6.1 (= 6.1.1)",),
            ),
            text_package("kernel-6.1", depends=("kmod", "initramfs-tools")),
            text_package("kmod"),
            text_package("initramfs-tools"),
            busybox_package("busybox-static", depends=("libc6",)),
        ],
        "deb",
    )
    res = resolve(source, ["busybox-static", "kernel-meta"], follow_dependencies=False)
    assert res.names == ["busybox-static", "kernel-6.1", "kernel-meta"]
    assert res.reasons["kernel-6.1"] == "kernel-meta → kernel-6.1"
    assert res.missing == ()
    full = resolve(source, ["busybox-static", "kernel-meta"])
    assert {"kmod", "initramfs-tools"} <= set(full.names)
    assert full.missing == (("libc6", "busybox-static"),)


@pytest.mark.parametrize("fmt", ["arch", "glaucus", "deb"])
def test_selected_names_keep_their_reason_when_also_required(tmp_path: Path, fmt: str) -> None:
    source = _source(tmp_path, [text_package("app", depends=("lib",)), text_package("lib")], fmt)
    res = resolve(source, ["app", "lib"])
    assert res.reasons == {"app": "selected", "lib": "selected"}
