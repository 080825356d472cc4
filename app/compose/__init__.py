"""The live ISO build pipeline: profiles, stages, initramfs, root image, bootloaders."""
