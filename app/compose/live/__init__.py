"""The live layer: what makes a staged root boot and run as a live system."""
