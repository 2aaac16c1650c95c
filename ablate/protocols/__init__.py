"""Training protocols: named, typed recipes (``ablate/protocols/*.yaml``) that every candidate and baseline share.

- ``recipe``: the :class:`Protocol` dataclass, its validation and loading;
- ``schedules``: learning-rate schedules as functions of the step;
- ``optimizers``: optimizers over timm's weight-decay parameter groups;
- ``devices``: which settings need CUDA (``enabled``) and the line a CPU run prints about them.
"""

from ablate.protocols.devices import CUDA_ONLY, cpu_fallback_line, enabled
from ablate.protocols.optimizers import OPTIMIZERS
from ablate.protocols.recipe import DEFAULT_PROTOCOL, Protocol, build_protocol, list_protocols, load_protocol
from ablate.protocols.schedules import SCHEDULES, lr_factor

__all__ = ["CUDA_ONLY", "DEFAULT_PROTOCOL", "OPTIMIZERS", "SCHEDULES", "Protocol", "build_protocol",
           "cpu_fallback_line", "enabled", "list_protocols", "load_protocol", "lr_factor"]
