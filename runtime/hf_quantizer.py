"""polysparse as a transformers quantization method: ``from_pretrained`` loads a compressed 2:4 folder.

A folder written by :func:`~polysparse.runtime.checkpoint.save_sparse` (``polysparse export``, the demo's
``compressed/``) carries, next to its ``sparsity_config``, a ``quantization_config`` whose ``quant_method`` is
``polysparse``. Once :func:`register` has run (``import polysparse`` arranges it), transformers builds
:class:`PolysparseHfQuantizer` for such a folder, and ``AutoModelForCausalLM.from_pretrained`` (``pipeline``,
``device_map``, ``dtype``) returns the model with :class:`~polysparse.runtime.linear.Sparse24Linear` layers
that receive the stored values and metadata directly: no dense weight of a sparse layer is built.

Without polysparse, transformers skips the unknown method and would look for ``model.safetensors``; the
folder's ``config.json`` therefore names its weights with a ``transformers_weights`` entry that is a sentence,
not a file (:data:`PLAIN_LOAD_REFUSAL`): transformers refuses it and prints the sentence. The quantizer puts
the real file name there before transformers resolves the files.

This module imports only transformers' quantizer bases (it is imported while transformers imports its
quantizer registry); the work is in :mod:`polysparse.runtime.checkpoint.pretrained`.
"""

from __future__ import annotations

from typing import Any

from transformers.quantizers.base import HfQuantizer
from transformers.utils.quantization_config import QuantizationConfigMixin

QUANT_METHOD = "polysparse"

PLAIN_LOAD_REFUSAL = (
    "these are 2:4 sparse weights compressed by polysparse: run `import polysparse` before from_pretrained "
    "(pip install polysparse) to load them"
)
"""What a compressed folder's ``config.json`` holds as ``transformers_weights``: not a ``.safetensors`` name,
so transformers without polysparse refuses to load the folder and shows this sentence."""


class PolysparseConfig(QuantizationConfigMixin):
    """The ``quantization_config`` of a compressed folder. The layers, files and provenance are in the
    folder's ``sparsity_config``; every key is kept as it is, so ``save_pretrained`` writes it back.

    Pass ``quantization_config=PolysparseConfig()`` to ``from_pretrained`` to read a folder written before
    compressed folders carried a ``quantization_config`` (or convert it: ``polysparse export``)."""

    def __init__(self, **entries: Any) -> None:
        entries.pop("quant_method", None)
        self.quant_method = QUANT_METHOD
        for key, value in entries.items():
            setattr(self, key, value)


class PolysparseHfQuantizer(HfQuantizer):
    """Swaps the declared layers for :class:`Sparse24Linear` shells before transformers loads the weights
    into them, then checks and finishes them (:mod:`polysparse.runtime.checkpoint.pretrained`)."""

    requires_calibration = True  # it only reads weights that polysparse pruned and compressed

    def __init__(self, quantization_config: QuantizationConfigMixin, **kwargs: Any) -> None:
        # A folder written before the quantization_config existed, read with an explicit
        # PolysparseConfig: its weights are compressed all the same (there is no quantizing on load).
        kwargs["pre_quantized"] = True
        super().__init__(quantization_config, **kwargs)

    def validate_environment(self, *args: Any, **kwargs: Any) -> None:
        device_map = kwargs.get("device_map")
        if isinstance(device_map, dict) and "disk" in device_map.values():
            raise ValueError(
                "polysparse's sparse layers cannot be offloaded to disk: give device_map GPUs and the CPU"
            )

    def _locate_weights(self, config):
        from polysparse.runtime.checkpoint.pretrained import weights_file

        config.transformers_weights = weights_file(config)
        return config

    # The hook that sees the model config before transformers resolves the weight files:
    # update_attn_implementation since transformers 5.2x, update_tp_plan before.
    def update_attn_implementation(self, config):
        return self._locate_weights(config)

    def update_tp_plan(self, config):
        return self._locate_weights(config)

    def _process_model_before_weight_loading(self, model, checkpoint_files=None, **kwargs: Any):
        from polysparse.runtime.checkpoint.pretrained import prepare_shells

        prepare_shells(model, checkpoint_files)
        return model

    def _process_model_after_weight_loading(self, model, **kwargs: Any):
        from polysparse.runtime.checkpoint.pretrained import finish_sparse_layers

        finish_sparse_layers(model)
        return model

    def get_state_dict_and_metadata(self, model):
        # Reached only through PreTrainedModel.save_pretrained(model, ...) called unbound: a loaded model's
        # own save_pretrained writes the compressed layout (finish_sparse_layers binds it).
        raise ValueError(
            "a polysparse model saves with model.save_pretrained(folder) or "
            "polysparse.runtime.save_sparse(model, folder), which write its compressed layout"
        )

    def is_serializable(self, *args: Any, **kwargs: Any) -> bool:
        return True

    @property
    def is_trainable(self) -> bool:
        return False


def register() -> None:
    """Make transformers' registries know the ``polysparse`` method (idempotent)."""
    from transformers.quantizers.auto import (
        AUTO_QUANTIZATION_CONFIG_MAPPING,
        AUTO_QUANTIZER_MAPPING,
        register_quantization_config,
        register_quantizer,
    )

    if AUTO_QUANTIZATION_CONFIG_MAPPING.get(QUANT_METHOD) is not PolysparseConfig:
        AUTO_QUANTIZATION_CONFIG_MAPPING.pop(QUANT_METHOD, None)  # an earlier import of this module
        register_quantization_config(QUANT_METHOD)(PolysparseConfig)
    if AUTO_QUANTIZER_MAPPING.get(QUANT_METHOD) is not PolysparseHfQuantizer:
        AUTO_QUANTIZER_MAPPING.pop(QUANT_METHOD, None)
        register_quantizer(QUANT_METHOD)(PolysparseHfQuantizer)


# Set by polysparse's import hook (polysparse/_transformers_hook.py) when this module's own import of
# transformers' quantizers fired it.
if globals().get("register_when_defined"):
    register()
