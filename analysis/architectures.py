"""Per architecture: which tensor holds each role of a block, and how to read it as (out, in).

Roles: qkv (attention input projection), attn_out (attention output, "dense"),
mlp_in, mlp_out. Every matrix is returned as w: (out, in), the layout of torch's Linear.
"""

from dataclasses import dataclass

import numpy as np

from .config import ROLES, ConfigError


@dataclass(frozen=True)
class Architecture:
    name: str
    tensors: dict  # role -> tensor-name template with {block}, or a tuple of them stacked as rows
    n_layers_key: str = "num_hidden_layers"
    n_heads_key: str = "num_attention_heads"
    transposed: bool = False  # stored as (in, out), e.g. GPT-2's Conv1D
    qkv_layout: str = "per_head"  # "per_head": [q, k, v] per head (GPT-NeoX); "stacked": [Q; K; V]


GPT_NEOX = Architecture(
    name="gpt_neox",
    tensors={
        "qkv": "gpt_neox.layers.{block}.attention.query_key_value.weight",
        "attn_out": "gpt_neox.layers.{block}.attention.dense.weight",
        "mlp_in": "gpt_neox.layers.{block}.mlp.dense_h_to_4h.weight",
        "mlp_out": "gpt_neox.layers.{block}.mlp.dense_4h_to_h.weight",
    },
)

# GPT-2 (e.g. Stanford CRFM's runs): Conv1D weights are stored (in, out); c_attn concatenates
# q, k and v as three contiguous blocks, with no per-head interleaving.
GPT2 = Architecture(
    name="gpt2",
    tensors={
        "qkv": "transformer.h.{block}.attn.c_attn.weight",
        "attn_out": "transformer.h.{block}.attn.c_proj.weight",
        "mlp_in": "transformer.h.{block}.mlp.c_fc.weight",
        "mlp_out": "transformer.h.{block}.mlp.c_proj.weight",
    },
    n_layers_key="n_layer",
    n_heads_key="n_head",
    transposed=True,
    qkv_layout="stacked",
)

# Llama, OLMo (-hf, model_type "olmo") and OLMo 2 ("olmo2"): separate q, k, v projections, stacked
# here into the qkv role; the gated MLP's two input projections (gate, up) are stacked into mlp_in.
# OLMo 2 adds norms (q_norm, k_norm, post-attention and post-feedforward) but no other matrix.
_LLAMA_TENSORS = {
    "qkv": tuple(f"model.layers.{{block}}.self_attn.{p}_proj.weight" for p in "qkv"),
    "attn_out": "model.layers.{block}.self_attn.o_proj.weight",
    "mlp_in": ("model.layers.{block}.mlp.gate_proj.weight", "model.layers.{block}.mlp.up_proj.weight"),
    "mlp_out": "model.layers.{block}.mlp.down_proj.weight",
}
LLAMA = Architecture(name="llama", tensors=_LLAMA_TENSORS, qkv_layout="stacked")
OLMO = Architecture(name="olmo", tensors=_LLAMA_TENSORS, qkv_layout="stacked")
OLMO2 = Architecture(name="olmo2", tensors=_LLAMA_TENSORS, qkv_layout="stacked")

ARCHITECTURES = {"gpt_neox": GPT_NEOX, "gpt2": GPT2, "llama": LLAMA, "olmo": OLMO, "olmo2": OLMO2}


def for_config(config: dict, where: str = "config.json") -> Architecture:
    model_type = config.get("model_type")
    if model_type not in ARCHITECTURES:
        raise ValueError(f"{where}: model_type {model_type!r} is not supported; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[model_type]


def middle_block(n_layers: int) -> int:
    """The study's block: n_layers // 2 (block 8 of pythia-1b's 16)."""
    return n_layers // 2


def resolve_block(block_setting, n_layers: int) -> int:
    """The `analysis.block` setting ("middle" or a block index) for a model of n_layers blocks."""
    if block_setting == "middle":
        return middle_block(n_layers)
    # bool is an int to Python; `block: true` is a typo, not block 1.
    if isinstance(block_setting, bool) or not isinstance(block_setting, (int, np.integer)):
        raise ConfigError(f"analysis.block: expected 'middle' or an integer, got {block_setting!r}")
    if not 0 <= block_setting < n_layers:
        raise ConfigError(f"analysis.block: block {block_setting} does not exist; the model has blocks 0..{n_layers - 1}")
    return int(block_setting)


def tensor_names(arch: Architecture, role: str, block: int, n_layers: int) -> tuple[str, ...]:
    """The tensors that make up a role's matrix, stacked as rows in this order."""
    if role not in ROLES:
        raise KeyError(f"unknown role {role!r}; expected one of {list(ROLES)}")
    if not 0 <= block < n_layers:
        raise IndexError(f"block {block} does not exist: this {arch.name} model has blocks 0..{n_layers - 1}")
    templates = arch.tensors[role]
    return tuple(t.format(block=block) for t in ((templates,) if isinstance(templates, str) else templates))


def tensor_name(arch: Architecture, role: str, block: int, n_layers: int) -> str:
    """One string naming a role's tensors (joined with '+'): a cache key and a label."""
    return "+".join(tensor_names(arch, role, block, n_layers))


def split_qkv(w: np.ndarray, n_heads: int, layout: str = "per_head") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The qkv role's w: (rows, d) split into q, k, v.

    per_head (GPT-NeoX): rows grouped per head as [q, k, v] blocks of head_size; each part
    is returned (d, d) with rows in head order, as separate projections would be.
    stacked (GPT-2, Llama): [Q; K; V]; Q has n_heads * (d / n_heads) rows and K and V share
    the rest equally (grouped-query attention gives them fewer rows).
    """
    if layout == "stacked":
        rows, d_in = w.shape
        q_rows = n_heads * (d_in // n_heads)
        kv = (rows - q_rows) // 2
        if q_rows + 2 * kv != rows or kv <= 0:
            raise ValueError(f"qkv matrix has {rows} rows, not q ({q_rows}) plus two equal k, v blocks")
        return w[:q_rows], w[q_rows : q_rows + kv], w[q_rows + kv :]
    if layout != "per_head":
        raise ValueError(f"unknown qkv layout {layout!r}; expected per_head or stacked")
    rows, d_in = w.shape
    head_size = rows // (3 * n_heads)
    if head_size * 3 * n_heads != rows:
        raise ValueError(f"qkv matrix has {rows} rows, not a multiple of 3 * n_heads = {3 * n_heads}")
    per_head = w.reshape(n_heads, 3, head_size, d_in)
    return tuple(per_head[:, i].reshape(n_heads * head_size, d_in) for i in range(3))
