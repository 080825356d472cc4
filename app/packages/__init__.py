"""Package sources (glaucus, Arch-style, tarball folders, Debian), resolution, extraction."""
