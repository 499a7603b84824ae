import numpy as np
import pytest
import torch
from transformers import GPTNeoXConfig
from transformers.models.gpt_neox.modeling_gpt_neox import GPTNeoXForCausalLM

from analysis import architectures
from analysis.config import ConfigError


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


def test_gpt2_conv1d_weights_are_read_as_out_by_in_and_qkv_is_stacked(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from analysis.checkpoints import Checkpoint

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=64, n_positions=16,
                                       bos_token_id=0, eos_token_id=0)).eval()
    model.save_pretrained(tmp_path, safe_serialization=True)
    ck = Checkpoint(tmp_path, 0)
    attn = model.transformer.h[1].attn
    w = ck.matrix("qkv", 1)
    assert w.shape == (96, 32) and ck.matrix("mlp_in", 1).shape == (128, 32) and ck.matrix("mlp_out", 1).shape == (32, 128)
    x = torch.randn(3, 32)
    fused = attn.c_attn(x).detach().numpy()  # (3, 96): q | k | v, each 32 wide
    np.testing.assert_allclose(x.numpy() @ w.T + attn.c_attn.bias.detach().numpy(), fused, rtol=1e-5, atol=1e-5)
    q, k, v = architectures.split_qkv(w, 4, ck.architecture.qkv_layout)
    np.testing.assert_allclose(x.numpy() @ k.T, fused[:, 32:64] - attn.c_attn.bias.detach().numpy()[32:64], rtol=1e-5, atol=1e-5)


def test_llama_qkv_role_stacks_the_three_projections(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from analysis.checkpoints import Checkpoint

    torch.manual_seed(0)
    cfg = LlamaConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=64, vocab_size=64, bos_token_id=0, eos_token_id=0)
    model = LlamaForCausalLM(cfg).eval()
    model.save_pretrained(tmp_path, safe_serialization=True)
    ck = Checkpoint(tmp_path, 0)
    attn = model.model.layers[0].self_attn
    w = ck.matrix("qkv", 0)
    assert w.shape == (32 + 16 + 16, 32)  # grouped-query attention: k and v have 2 heads of 8
    q, k, v = architectures.split_qkv(w, 4, "stacked")
    np.testing.assert_array_equal(q, attn.q_proj.weight.detach().numpy())
    np.testing.assert_array_equal(v, attn.v_proj.weight.detach().numpy())
    assert ck.matrix("mlp_in", 0).shape == (128, 32)  # gate and up stacked
    assert ck.matrix("attn_out", 0).shape == (32, 32)


def test_middle_block_is_the_studys_n_layers_over_two():
    assert architectures.middle_block(16) == 8  # pythia-1b
    assert architectures.middle_block(24) == 12  # pythia-1.4b
    assert architectures.middle_block(5) == 2


def test_block_setting_resolves_or_names_analysis_block():
    assert architectures.resolve_block("middle", 16) == 8
    assert architectures.resolve_block(0, 16) == 0 and architectures.resolve_block(15, 16) == 15
    assert architectures.resolve_block(np.int64(3), 16) == 3
    for bad in (16, -1):
        with pytest.raises(ConfigError, match=rf"analysis.block: block {bad} does not exist; the model has blocks 0..15"):
            architectures.resolve_block(bad, 16)
    for bad in ("last", True, 2.0):
        with pytest.raises(ConfigError, match="analysis.block: expected 'middle' or an integer"):
            architectures.resolve_block(bad, 16)
