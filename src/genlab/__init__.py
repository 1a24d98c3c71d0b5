"""genlab: train, evaluate and explore VAEs and GANs."""

from genlab.api import load, load_step, train
from genlab.config import Config, load_config

__version__ = "0.1.0"

__all__ = ["Config", "__version__", "load", "load_config", "load_step", "train"]
