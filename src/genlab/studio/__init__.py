"""genlab studio: a local web page over trained runs (``genlab studio RUN ...``).

- :mod:`~genlab.studio.runs`: the served runs, each model loaded once, the live training log;
- :mod:`~genlab.studio.codec`: uploads decoded within limits, outputs as PNG data URLs;
- :mod:`~genlab.studio.app`: the FastAPI routes (schema at ``/openapi.json``);
- ``static/``: the page, plain HTML, CSS and JavaScript with no build step, shipped in the package.

The studio holds no model logic: it calls :mod:`genlab.latent`, the models' protocols and
:mod:`genlab.experiments.game`.
"""
