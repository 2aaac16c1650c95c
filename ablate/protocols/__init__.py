"""Training protocols: named, typed recipes (``ablate/protocols/*.yaml``) that every candidate and baseline share.

- ``recipe``: the :class:`Protocol` dataclass, its validation and loading;
- ``schedules``: learning-rate schedules as functions of the step;
- ``optimizers``: optimizers over timm's weight-decay parameter groups.
"""

from ablate.protocols.optimizers import OPTIMIZERS
from ablate.protocols.recipe import DEFAULT_PROTOCOL, Protocol, build_protocol, list_protocols, load_protocol
from ablate.protocols.schedules import SCHEDULES, lr_factor

__all__ = ["DEFAULT_PROTOCOL", "OPTIMIZERS", "SCHEDULES", "Protocol", "build_protocol", "list_protocols",
           "load_protocol", "lr_factor"]
