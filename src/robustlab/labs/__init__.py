"""Labs: the experiment families (image classification, VAE/CVAE, VQ-VAE, and plug-ins).

Each lab is a :class:`~robustlab.labs.base.Lab` registered in :data:`LABS` through the
``robustlab.labs`` entry-point group; ``robustlab labs`` lists them with their config schema.
"""

from robustlab.labs.base import LABS, Lab, RunContext, get_lab
from robustlab.labs.schema import schema_lines

__all__ = ["LABS", "Lab", "RunContext", "get_lab", "schema_lines"]
