"""Which packages a selection needs: run-time dependencies, followed transitively.

A dependency is satisfied, in this order, by a package already in the set (by name or by
what it provides), by a real package of that name, or by the first package that provides
it. For Debian's "a | b" the first alternative that can be satisfied wins. Meta-packages
(e.g. `linux-image-amd64`) always lead to what they depend on, even when dependencies are
not followed otherwise: that is how the kernel meta-package becomes the real versioned one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from app.errors import Problem
from app.packages.model import PackageInfo, PackageSource, alternatives


@dataclass(frozen=True)
class Resolution:
    packages: tuple[PackageInfo, ...]  # install order: dependencies first
    reasons: dict[str, str] = field(default_factory=dict)  # name -> "selected" / "required by X"
    missing: tuple[tuple[str, str], ...] = ()  # (dependency, required by)
    unknown: tuple[str, ...] = ()  # selected names that do not exist
    conflicts: tuple[tuple[str, str], ...] = ()  # (package, package it conflicts with)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unknown or self.conflicts)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.packages]

    def get(self, name: str) -> PackageInfo | None:
        return next((p for p in self.packages if p.name == name), None)

    def problems(self, source: str = "") -> list[Problem]:
        """Everything that stops this resolution from being built, as validation problems."""
        where = f" in {source}" if source else ""
        found = [Problem(f"package {name}", f"no such package{where}") for name in self.unknown]
        found += [
            Problem(f"package {by}", f"needs {dep}, which is not available{where}")
            for dep, by in self.missing
        ]
        found += [
            Problem(f"package {a}", f"conflicts with package {b}; select only one")
            for a, b in self.conflicts
        ]
        return found


def _dedupe(names: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for name in names:
        name = name.strip()
        if name:
            seen.setdefault(name, None)
    return list(seen)


def _prefetch(source: PackageSource, roots: Iterable[PackageInfo], follow: bool) -> None:
    """Ask the source about the whole dependency graph level by level (APT batches this)."""
    seen: set[str] = set()
    frontier = list(roots)
    while frontier:
        groups: list[str] = []
        for pkg in frontier:
            if pkg.name not in seen:
                seen.add(pkg.name)
                if follow or pkg.metapackage:
                    groups.extend(pkg.depends)
        source.lookup({alt for group in groups for alt in alternatives(group)})
        frontier = []
        for group in groups:
            for alt in alternatives(group):
                found = source.get(alt)
                if found is not None:
                    if found.name not in seen:
                        frontier.append(found)
                    break


class _Resolver:
    def __init__(self, source: PackageSource, follow: bool) -> None:
        self.source = source
        self.follow = follow
        self.in_set: dict[str, PackageInfo] = {}  # names and provided names -> package
        self.order: list[PackageInfo] = []
        self.done: set[str] = set()
        self.reasons: dict[str, str] = {}
        self.missing: list[tuple[str, str]] = []

    def claim(self, pkg: PackageInfo) -> None:
        self.in_set.setdefault(pkg.name, pkg)
        for name in pkg.provides:
            self.in_set.setdefault(name, pkg)

    def choose(self, group: str) -> PackageInfo | None:
        alts = alternatives(group)
        for alt in alts:
            if alt in self.in_set:
                return self.in_set[alt]
        for alt in alts:
            pkg = self.source.get(alt)
            if pkg is not None:
                return pkg
        for alt in alts:
            providers = self.source.providers(alt)
            if providers:
                return providers[0]
        return None

    def visit(self, pkg: PackageInfo, reason: str, visiting: set[str]) -> None:
        if pkg.name in self.done or pkg.name in visiting:
            return
        self.reasons.setdefault(pkg.name, reason)
        self.claim(pkg)
        visiting.add(pkg.name)
        if self.follow or pkg.metapackage:
            for group in pkg.depends:
                dep = self.choose(group)
                if dep is None:
                    self.missing.append((group, pkg.name))
                    continue
                why = f"{pkg.name} → {dep.name}" if pkg.metapackage else f"required by {pkg.name}"
                self.visit(dep, why, visiting)
        visiting.discard(pkg.name)
        self.done.add(pkg.name)
        self.order.append(pkg)


def _conflicts(packages: Sequence[PackageInfo]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for pkg in packages:
        for name in pkg.conflicts:
            for other in packages:
                # A package may conflict with a name it provides itself (Debian's way of
                # saying "only one provider of X"): that never conflicts with itself.
                if other is pkg or (name != other.name and name not in other.provides):
                    continue
                pair = (pkg.name, other.name)
                if pair not in found and pair[::-1] not in found:
                    found.append(pair)
    return found


def resolve(
    source: PackageSource, wanted: Sequence[str], *, follow_dependencies: bool = True
) -> Resolution:
    """The packages to install for the selection `wanted`, dependencies first."""
    names = _dedupe(wanted)
    source.lookup(names)
    resolver = _Resolver(source, follow_dependencies)
    selected: list[tuple[PackageInfo, str]] = []
    unknown = []
    for name in names:
        pkg = source.get(name)
        reason = "selected"
        if pkg is None:
            providers = source.providers(name)
            if providers:
                pkg, reason = providers[0], f"selected (provides {name})"
        if pkg is None:
            unknown.append(name)
            continue
        selected.append((pkg, reason))
        resolver.claim(pkg)  # so dependencies prefer what the user chose
    _prefetch(source, [pkg for pkg, _ in selected], follow_dependencies)
    for pkg, reason in selected:
        resolver.reasons[pkg.name] = reason
        resolver.visit(pkg, reason, set())
    packages = tuple(resolver.order)
    return Resolution(
        packages=packages,
        reasons={p.name: resolver.reasons[p.name] for p in packages},
        missing=tuple(resolver.missing),
        unknown=tuple(unknown),
        conflicts=tuple(_conflicts(packages)),
    )
