"""Per architecture: which tensor holds each role of a block, and how to read it as (out, in).

Roles: qkv (attention input projection), attn_out (attention output, "dense"),
mlp_in, mlp_out. Every matrix is returned as w: (out, in), the layout of torch's Linear.
"""

from dataclasses import dataclass

import numpy as np

from .config import ROLES


@dataclass(frozen=True)
class Architecture:
    name: str
    tensors: dict  # role -> tensor-name template with {block}
    n_layers_key: str = "num_hidden_layers"
    n_heads_key: str = "num_attention_heads"
    transposed: bool = False  # stored as (in, out), e.g. GPT-2's Conv1D


GPT_NEOX = Architecture(
    name="gpt_neox",
    tensors={
        "qkv": "gpt_neox.layers.{block}.attention.query_key_value.weight",
        "attn_out": "gpt_neox.layers.{block}.attention.dense.weight",
        "mlp_in": "gpt_neox.layers.{block}.mlp.dense_h_to_4h.weight",
        "mlp_out": "gpt_neox.layers.{block}.mlp.dense_4h_to_h.weight",
    },
)

ARCHITECTURES = {"gpt_neox": GPT_NEOX}


def for_config(config: dict, where: str = "config.json") -> Architecture:
    model_type = config.get("model_type")
    if model_type not in ARCHITECTURES:
        raise ValueError(f"{where}: model_type {model_type!r} is not supported; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[model_type]


def tensor_name(arch: Architecture, role: str, block: int, n_layers: int) -> str:
    if role not in ROLES:
        raise KeyError(f"unknown role {role!r}; expected one of {list(ROLES)}")
    if not 0 <= block < n_layers:
        raise IndexError(f"block {block} does not exist: this {arch.name} model has blocks 0..{n_layers - 1}")
    return arch.tensors[role].format(block=block)


def split_qkv(w: np.ndarray, n_heads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GPT-NeoX's fused w: (3*d, d), rows grouped per head as [q, k, v] blocks of head_size.

    Returns q, k, v, each (d, d) with rows in head order, as separate projections would be.
    """
    rows, d_in = w.shape
    head_size = rows // (3 * n_heads)
    if head_size * 3 * n_heads != rows:
        raise ValueError(f"qkv matrix has {rows} rows, not a multiple of 3 * n_heads = {3 * n_heads}")
    per_head = w.reshape(n_heads, 3, head_size, d_in)
    return tuple(per_head[:, i].reshape(n_heads * head_size, d_in) for i in range(3))
