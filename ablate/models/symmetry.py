"""QLNet's continuous symmetry, as a check anyone can run on a model.

In eval mode, BN folds into the preceding conv, and the residual stream of a stage is then acted on only by
linear maps and radial functions (hardball). Rotating the stream by an orthogonal Q — left-multiplying
what writes to it (conv3 and the projection skip of a stage's first block) and right-multiplying by Qᵀ what
reads it (conv1 of later blocks, the next stage's conv1 and skip, the classifier) — leaves the logits
unchanged up to round-off. A ReLU on the stream breaks that invariance, which is what this measures.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ablate.core import schema
from ablate.models.blocks import Block
from ablate.models.networks import BlockNet


def fuse_conv_bn(conv_bn: nn.Sequential) -> nn.Conv2d:
    """Fold an eval-mode (Conv2d, BatchNorm2d) pair into one Conv2d with bias."""
    conv, bn = conv_bn[0], conv_bn[1]
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      groups=conv.groups, bias=True).to(conv.weight.device, conv.weight.dtype)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale[:, None, None, None])
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
    return fused


def fuse_blocks(model: BlockNet) -> BlockNet:
    """Replace every block's conv1 / conv3 / projection-skip ConvBN with a fused conv (in place)."""
    for block in model.modules():
        if isinstance(block, Block):
            block.conv1 = fuse_conv_bn(block.conv1)
            block.conv3 = fuse_conv_bn(block.conv3)
            if isinstance(block.skip, nn.Sequential):
                block.skip = fuse_conv_bn(block.skip)
    return model


def random_orthogonal(n: int, generator: torch.Generator) -> torch.Tensor:
    """Haar-distributed orthogonal matrix from the QR decomposition of a Gaussian matrix."""
    q, r = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).float()


@torch.no_grad()
def _rotate_output(conv: nn.Conv2d, q: torch.Tensor) -> None:
    conv.weight.copy_(torch.einsum("ij,jkhw->ikhw", q, conv.weight))
    conv.bias.copy_(q @ conv.bias)


@torch.no_grad()
def _rotate_input(layer: nn.Conv2d | nn.Linear, q: torch.Tensor) -> None:
    """Right-multiply by Qᵀ: the layer now reads a rotated stream and computes what it did before."""
    if isinstance(layer, nn.Linear):
        layer.weight.copy_(layer.weight @ q.T)
    else:
        layer.weight.copy_(torch.einsum("oihw,ji->ojhw", layer.weight, q))


def rotate_residual_streams(model: BlockNet, seed: int = 0) -> int:
    """Apply one random orthogonal Q per stage to the stage's residual stream, in place; returns how many.

    The model must be fused. A stage whose first block has an identity skip carries the stem's ReLU output
    on its stream (QLNet's first stage), which no rotation can pass through, so it is left as it is.
    """
    generator = torch.Generator().manual_seed(seed)
    stages = [list(stage) for stage in model.stages]
    rotated = 0
    for s, blocks in enumerate(stages):
        if not isinstance(blocks[0].skip, nn.Conv2d):
            continue
        q = random_orthogonal(blocks[0].conv3.out_channels, generator).to(blocks[0].conv3.weight.device)
        _rotate_output(blocks[0].skip, q)
        for i, block in enumerate(blocks):
            _rotate_output(block.conv3, q)
            if i > 0:
                _rotate_input(block.conv1, q)
        next_first = stages[s + 1][0] if s + 1 < len(stages) else None
        if next_first is not None and not isinstance(next_first.skip, nn.Conv2d):
            raise ValueError(f"stage {s + 2} starts with an identity skip: it cannot read a rotated stream")
        for layer in [next_first.conv1, next_first.skip] if next_first is not None else [model.fc]:
            _rotate_input(layer, q)
        rotated += 1
    return rotated


SYMMETRY_RTOL = schema.SYMMETRY_RTOL  # its value lives with the table's vocabulary (light to import)
"""A model is ``symmetric`` when its gap is at most this fraction of its largest |logit| on the same input.

fp32 round-off through a fused, rotated ResNet50-deep net stays near 1e-6 of the logits' scale; a ReLU on the
stream changes logits by a sizeable fraction of it (1e-1 and up), so 1e-3 separates the two by orders of magnitude.
"""


@torch.no_grad()
def rotated_logits(model: nn.Module, input_size: tuple[int, int, int] = (3, 64, 64), *, batch_size: int = 2,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of the fused model and of its per-stage orthogonally rotated copy, in eval mode, on one random batch.

    Args:
        model: an ablate ``BlockNet`` with a linear classifier (``num_classes > 0``); it is copied, not changed.
        input_size: (C, H, W) of the random input.
        batch_size: images in the random batch.
        seed: seeds the rotations and the input.

    Returns:
        (logits, rotated logits), each (batch_size, num_classes).

    Raises:
        TypeError: the model is not a ``BlockNet``.
        ValueError: the model has no classifier, or no residual stream could be rotated.
    """
    if not isinstance(model, BlockNet):
        raise TypeError(f"symmetry_gap needs an ablate BlockNet (got {type(model).__name__})")
    if not isinstance(model.fc, nn.Linear):
        raise ValueError("symmetry_gap needs the model's linear classifier: build it with num_classes > 0")
    fused = fuse_blocks(copy.deepcopy(model).eval())
    rotated = copy.deepcopy(fused)
    if rotate_residual_streams(rotated, seed) == 0:
        raise ValueError("no residual stream could be rotated: no stage starts with a projection skip")
    device = next(model.parameters()).device
    x = torch.randn(batch_size, *input_size, generator=torch.Generator().manual_seed(seed + 1)).to(device)
    return fused(x), rotated(x)


def symmetry_gap(model: nn.Module, input_size: tuple[int, int, int] = (3, 64, 64), *, batch_size: int = 2,
                 seed: int = 0) -> float:
    """Max |Δlogits| between the model and its per-stage orthogonally rotated copy, both fused, in eval mode.

    QLNet keeps its logits (gap ~1e-6 in fp32); a ReLU ResNet does not (gap of the order of the logits).
    Arguments and errors as ``rotated_logits``.
    """
    logits, rotated = rotated_logits(model, input_size, batch_size=batch_size, seed=seed)
    return (logits - rotated).abs().max().item()


def symmetry_columns(model: nn.Module, input_size: tuple[int, int, int], *, rtol: float = SYMMETRY_RTOL,
                     seed: int = 0) -> dict[str, float | bool]:
    """A trained model's continuous-symmetry columns for a results row.

    Args:
        model: an ablate ``BlockNet`` (trained weights; evaluated on a copy in eval mode).
        input_size: (C, H, W) the model was trained on.
        rtol: tolerance relative to the logits' scale (``SYMMETRY_RTOL``).
        seed: seeds the rotations and the random input.

    Returns:
        ``symmetry_gap``: max |Δlogits| under the rotation; ``symmetric``: whether that gap is at most
        ``rtol`` × max |logits|.

    Raises:
        TypeError: the model is not a ``BlockNet``.
        ValueError: the model has no classifier, or no residual stream could be rotated.
    """
    logits, rotated = rotated_logits(model, input_size, seed=seed)
    gap = (logits - rotated).abs().max().item()
    scale = logits.abs().max().item()
    return {"symmetry_gap": gap, "symmetric": bool(gap <= rtol * scale)}
