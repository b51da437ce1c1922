"""robustlab: train, attack, defend and explain deep networks.

Every model takes pixels in [0, 1] (NCHW float) and carries its own normalization, so every
attack works in pixel space. See ``robustlab --help`` for the CLI.
"""

from robustlab.core.errors import RobustlabError

__version__ = "0.1.0"
__all__ = ["RobustlabError", "__version__"]
