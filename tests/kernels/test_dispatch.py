import triton

from polysparse.kernels.dispatch import launcher


def tuned():
    pass


def hand():
    pass


def test_launcher_autotuned_without_config():
    assert launcher(tuned, hand, None) == (tuned, {})


def test_launcher_pins_a_config_on_the_plain_kernel():
    config = triton.Config({"BLOCK_N": 64, "BLOCK_K": 128}, num_warps=4, num_stages=3)
    kernel, extra = launcher(tuned, hand, config)
    assert kernel is hand
    assert extra == {"BLOCK_N": 64, "BLOCK_K": 128, "num_warps": 4, "num_stages": 3}
