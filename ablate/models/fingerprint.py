"""Which network a block config builds: a fingerprint of the built model, so that two spellings of one network
(``relu-dwconv-w1`` and ``relu-dwconv-w1.001`` both give inner channels 64, 128, 256) are one config everywhere.

The fingerprint hashes, for every module of the network built on ``macro``, its path, its class and its
``extra_repr`` (kernel, stride, groups, radius, …), then every parameter's and buffer's name, shape and dtype. Two
configs with equal fingerprints have identical parameter shapes, identical initialisation under one seed and
identical forward passes. The network is built on PyTorch's ``meta`` device (shapes only, no memory, ≈ 30 ms), once
per process and (config, macro). The classifier is built for a fixed class count: every model of a run shares its
data, so the class count never tells two of them apart.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import torch

from ablate.models.blocks import BlockConfig
from ablate.models.networks import build_model

NOMINAL_CLASSES = 10
LENGTH = 12  # hex digits kept: collisions among a space's few hundred networks are out of reach


def network_fingerprint(block: BlockConfig | str, macro: str) -> str:
    """The fingerprint of the network ``block`` builds on ``macro``.

    Args:
        block: A block config or its string.
        macro: A ``MACROS`` name.

    Returns:
        ``LENGTH`` hex digits; equal exactly when the built networks are the same.

    Example:
        >>> network_fingerprint("relu-dwconv-w1", "cifar") == network_fingerprint("relu-dwconv-w1.001", "cifar")
        True
    """
    return _fingerprint(str(BlockConfig.coerce(block)), macro)


@lru_cache(maxsize=4096)
def _fingerprint(block: str, macro: str) -> str:
    with torch.device("meta"):
        model = build_model(block, macro, NOMINAL_CLASSES)
    digest = hashlib.sha1()
    for name, module in model.named_modules():
        digest.update(f"{name}|{type(module).__module__}.{type(module).__qualname__}|{module.extra_repr()}\n".encode())
    for name, tensor in (*model.named_parameters(), *model.named_buffers()):
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}\n".encode())
    return digest.hexdigest()[:LENGTH]
