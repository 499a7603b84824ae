import numpy as np
import pytest
import torch
from transformers import GPTNeoXConfig
from transformers.models.gpt_neox.modeling_gpt_neox import GPTNeoXForCausalLM

from analysis import architectures


def tiny_neox(n_heads=4, d=32):
    torch.manual_seed(0)
    cfg = GPTNeoXConfig(vocab_size=64, hidden_size=d, num_hidden_layers=2, num_attention_heads=n_heads,
                        intermediate_size=4 * d, rotary_pct=0.25, use_parallel_residual=True)
    return GPTNeoXForCausalLM(cfg).eval()


def test_qkv_split_matches_attention_heads():
    """Split rows must be the q, k, v that the attention module itself computes, per head."""
    n_heads, d = 4, 32
    model = tiny_neox(n_heads, d)
    attn = model.gpt_neox.layers[1].attention
    w = attn.query_key_value.weight.detach().numpy()
    b = attn.query_key_value.bias.detach().numpy()
    x = np.random.default_rng(0).standard_normal((5, d)).astype(np.float32)
    # The module's own projection, reshaped the way GPT-NeoX's forward pass does it.
    fused = attn.query_key_value(torch.from_numpy(x)).detach().numpy()
    per_head = fused.reshape(5, n_heads, 3 * (d // n_heads))
    hs = d // n_heads
    q_ref, k_ref, v_ref = (per_head[..., i * hs:(i + 1) * hs].reshape(5, d) for i in range(3))
    q, k, v = architectures.split_qkv(w, n_heads)
    bq, bk, bv = architectures.split_qkv(b[:, None], n_heads)
    for mat, bias, ref in ((q, bq, q_ref), (k, bk, k_ref), (v, bv, v_ref)):
        assert mat.shape == (d, d)
        np.testing.assert_allclose(x @ mat.T + bias[:, 0], ref, rtol=1e-5, atol=1e-5)


def test_split_rejects_a_matrix_that_is_not_fused_qkv():
    with pytest.raises(ValueError, match="not a multiple of 3"):
        architectures.split_qkv(np.zeros((10, 8)), n_heads=4)


def test_tensor_names_exist_in_a_real_gpt_neox_model():
    model = tiny_neox()
    names = set(model.state_dict())
    for role in ("qkv", "attn_out", "mlp_in", "mlp_out"):
        assert architectures.tensor_name(architectures.GPT_NEOX, role, 1, 2) in names


def test_unknown_role_block_and_model_type_are_clear_errors():
    with pytest.raises(KeyError, match="unknown role 'attention'"):
        architectures.tensor_name(architectures.GPT_NEOX, "attention", 0, 2)
    with pytest.raises(IndexError, match="block 5 does not exist.*0..1"):
        architectures.tensor_name(architectures.GPT_NEOX, "qkv", 5, 2)
    with pytest.raises(ValueError, match="model_type 'mamba' is not supported"):
        architectures.for_config({"model_type": "mamba"})
