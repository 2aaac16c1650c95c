"""An example plugin: a weight-free shift as the block's spatial op, and a gated linear unit as its nonlinearity.

- ``shift``: the channels fall into five groups; four are moved one pixel (up, down, left, right, wrapping round
  the border) and one stays, so a 1×1 conv after it sees a 3×3 neighbourhood for no multiply at all (ShiftNet's
  idea). ``torch.roll`` only moves memory: it costs no MACs and no element-wise ops.
- ``glu``: conv1 doubles its width and the halves gate each other, ``a · sigmoid(b)`` (a learned gate, where
  QLNet's multiply takes the plain product ``a · b``); the block is linear after that. fvcore has no count for
  ``aten::glu``, so ablate names it in a warning, in the table's ``uncounted_ops`` and in the report, rather than
  count a sigmoid and a product per element as free.

Use it with ``python run_ablation.py --space examples/plugins/shift_glu.yaml`` (the space file names this
module), or name it for any space: ``--plugin examples/plugins/shift_glu.py``.
"""

import torch
from torch import nn

import ablate


class ChannelShift(nn.Module):
    """Move four of five channel groups one pixel each way (wrapping), then subsample by the stride."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = x.chunk(5, dim=1)
        moves = ((1, 2), (-1, 2), (1, 3), (-1, 3))
        shifted = [torch.roll(g, step, dims=dim) for g, (step, dim) in zip(groups, moves)] + list(groups[4:])
        y = torch.cat(shifted, dim=1)
        return y[:, :, ::self.stride, ::self.stride] if self.stride > 1 else y


@ablate.register_spatial("shift", weighted=False)
def shift(channels: int, stride: int) -> nn.Module:
    """Weight-free 3×3 shift: five channel groups, four moved one pixel (ShiftNet)."""
    return ChannelShift(stride)


@ablate.register_nonlinearity("glu", conv1_factor=2, positions=("inner",), init="linear")
def glu(channels: int) -> nn.Module:
    """conv1 to 2× width, one half gating the other, a · sigmoid(b); linear after that."""
    return nn.GLU(dim=1)
