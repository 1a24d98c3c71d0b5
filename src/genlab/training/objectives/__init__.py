"""Objectives: one Step per model family, each registered by its module (every module here
is imported on the first lookup of ``genlab.registry.OBJECTIVES``)."""
