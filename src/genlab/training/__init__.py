"""The one training loop and the step seam; it reads and writes runs through :mod:`genlab.runs`."""
