"""The initramfs /init script and its companions."""
