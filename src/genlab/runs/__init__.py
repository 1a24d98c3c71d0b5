"""Run folders, checkpoints and exports: the one place that reads and writes a run.

- :mod:`~genlab.runs.folder`: numbered run folders and the config and data spec they record;
- :mod:`~genlab.runs.checkpoint`: atomic checkpoints with checksums, the export ``genlab.load`` reads;
- :mod:`~genlab.runs.lock`: one writer per run folder.

Models, metrics, training, the CLI and the studio read runs through this package; it
imports none of them (only the config, the data specs and the errors below it).
"""
