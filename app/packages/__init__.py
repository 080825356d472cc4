"""Package sources (glaucus, Arch-style, tarball folders, Debian), resolution, extraction.

The public API, importable from here or from the modules named:
    model:   SourceKind, SourceSpec, PackageInfo, PackageSource
    sources: open_source(spec), detect_source(path)
    resolve: Resolution, resolve(source, names, follow_dependencies=True)
    gather:  gather(source, resolution, cache_dir, reporter)
Stage 3 lives in app.compose.assemble (assemble_root).
"""

from app.packages.gather import gather
from app.packages.model import PackageInfo, PackageSource, SourceKind, SourceSpec
from app.packages.resolve import Resolution, resolve
from app.packages.sources import detect_source, open_source

__all__ = [
    "PackageInfo",
    "PackageSource",
    "Resolution",
    "SourceKind",
    "SourceSpec",
    "detect_source",
    "gather",
    "open_source",
    "resolve",
]
