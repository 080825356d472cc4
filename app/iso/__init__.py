"""ISO 9660 mastering (pycdlib) and inspection of any ISO image."""
