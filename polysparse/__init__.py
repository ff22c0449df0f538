"""polysparse: language-calibrated pruning and 2:4 sparse inference for Hugging Face causal LMs.

The common path is two calls (:mod:`polysparse.api`)::

    import polysparse

    report = polysparse.prune("gemma-3-270m", out="runs/de", pattern="2:4", calib="handbook:de")
    scores = polysparse.evaluate("runs/de", data=["install-guide:de"])

The code lives in four subpackages (``polysparse.kernels``, ``.sparsify``, ``.runtime``, ``.bench``); see
their docstrings. Importing ``polysparse`` is cheap: ``prune`` and ``evaluate`` load on first use, and the one
side effect is that transformers learns the ``polysparse`` quantization method, so that
``AutoModelForCausalLM.from_pretrained(folder)`` (and ``pipeline``) loads a compressed 2:4 folder with
:class:`~polysparse.runtime.linear.Sparse24Linear` layers (:mod:`polysparse.runtime.hf_quantizer`).

The registration is lazy: importing transformers' quantizers costs seconds (torch and every model module), so
it happens when ``transformers.quantizers.auto`` is imported (at once if it already is), never here.
"""

from polysparse._packages import lazy_exports
from polysparse._transformers_hook import register_when_transformers_loads

# Importing polysparse is how a user asks for the transformers integration: registering it is this import's
# one side effect, and a cheap one (nothing is imported until transformers imports its quantizers).
register_when_transformers_loads()

__all__, __getattr__ = lazy_exports(__name__, {"api": ("evaluate", "prune")})
