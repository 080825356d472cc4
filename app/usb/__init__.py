"""USB writer: drive discovery, safe target checks, write and cache-proof verification."""
