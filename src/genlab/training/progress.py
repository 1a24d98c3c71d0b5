"""One image that shows a run's progress: the first row of every snapshot grid, oldest on top.

Snapshots use a fixed latent grid (or a fixed real batch), so each row shows the same
samples later in training. Built from the PNGs in ``samples/``, it survives resumes.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from genlab.errors import RunError

_SNAPSHOT = re.compile(r"-(\d+)kimg\.png$")


def progress_strip(run_dir: str | Path, name: str = "samples", nrow: int = 8, padding: int = 2) -> Path:
    """Stack the first row of each ``samples/<name>-<kimg>kimg.png`` into ``samples/<name>-progress.png``.

    ``nrow`` and ``padding`` must be those the grids were saved with (``images.save_grid``).
    Returns the path written.
    """
    samples = Path(run_dir) / "samples"
    grids = sorted((int(m.group(1)), p) for p in samples.glob(f"{name}-*kimg.png") if (m := _SNAPSHOT.search(p.name)))
    if not grids:
        raise RunError(f"no {name}-*kimg.png snapshots in {samples}; train the run past its first snapshot")
    rows = []
    for _, path in grids:
        grid = np.asarray(Image.open(path))
        side = (grid.shape[1] - padding) // nrow - padding  # square images, as make_grid lays them out
        rows.append(grid[: side + padding])  # top padding + first row of images
    strip = np.concatenate([*rows, rows[-1][:padding]], axis=0)  # close with a bottom padding
    out = samples / f"{name}-progress.png"
    Image.fromarray(strip).save(out)
    return out
