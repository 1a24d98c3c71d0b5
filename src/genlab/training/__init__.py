"""The one training loop, the step seam, checkpoints and run folders."""
