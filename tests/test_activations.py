import numpy as np
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from analysis import activations


def test_block_outputs_are_the_residual_stream_after_each_block():
    torch.manual_seed(0)
    cfg = GPTNeoXConfig(vocab_size=64, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                        intermediate_size=64, rotary_pct=0.25, use_parallel_residual=True)
    model = GPTNeoXForCausalLM(cfg).eval()
    ids = activations.token_batch(lambda t: [ord(c) % 64 for c in t], activations.HELDOUT.read_text(), seq_len=16, batch=3)
    assert ids.shape == (3, 16)
    outs = activations.block_outputs(model, ids)
    assert len(outs) == 3 and outs[0].shape == (3, 16, 32)
    with torch.no_grad():  # the model's own hidden states: entry b+1 is block b's output (last one after the final norm)
        hidden = model(input_ids=torch.from_numpy(ids), output_hidden_states=True).hidden_states
    np.testing.assert_allclose(outs[0], hidden[1].double().numpy(), rtol=1e-6, atol=1e-6)
    h = activations.histograms(outs)
    widths = np.diff(activations.EDGES)
    assert h["hist"].shape == (3, 80)
    np.testing.assert_allclose((h["hist"] * widths).sum(axis=1), 1.0, atol=1e-3)  # nearly all mass within ±8 std
    assert activations.js_distance(h["hist"][0], h["hist"][0]) == 0.0


def test_heldout_text_is_shipped_and_long_enough():
    text = activations.HELDOUT.read_text()
    assert len(text) > 5000 and "Shakespeare" in text
