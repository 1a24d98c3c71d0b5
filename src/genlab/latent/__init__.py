"""Latent-space tools for every model with a latent space, written against the protocols of
:mod:`genlab.models.protocols` (never against model classes):

- :mod:`~genlab.latent.sample`: seeded latents, checked class labels, batched decodes;
- :mod:`~genlab.latent.interpolate`: lerp and slerp paths, strip PNGs and GIFs;
- :mod:`~genlab.latent.traverse`: per-dimension grids in prior standard deviations;
- :mod:`~genlab.latent.attributes`: attribute vectors from factors or classes;
- :mod:`~genlab.latent.arithmetic`: a - b + c with averaged terms;
- :mod:`~genlab.latent.conditional`: class sweeps of conditional samplers;
- :mod:`~genlab.latent.encode` (models with an encoder) and :mod:`~genlab.latent.invert` (GANs):
  latents of real images, which :mod:`~genlab.latent.edit` changes and decodes.
"""
