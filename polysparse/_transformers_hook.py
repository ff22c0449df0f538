"""Registering polysparse's quantizer with transformers when transformers' quantizer registry is imported
(at once if it already is): the side effect ``import polysparse`` exists for (see polysparse/__init__.py)."""

from __future__ import annotations

import importlib.abc
import sys

_REGISTRY_MODULE = "transformers.quantizers.auto"
_QUANTIZER_MODULE = "polysparse.runtime.hf_quantizer"


def _register() -> None:
    quantizer = sys.modules.get(_QUANTIZER_MODULE)
    if quantizer is not None and not hasattr(quantizer, "register"):
        # That module's own import of transformers' quantizers brought us here: its classes do not exist yet,
        # so it registers them when it finishes.
        quantizer.register_when_defined = True
        return
    from polysparse.runtime.hf_quantizer import register

    register()


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Registers polysparse's quantizer right after transformers executes its quantizer registry.

    Finds the registry's spec with the other finders and wraps its loader's ``exec_module``; it leaves
    ``sys.meta_path`` once the registry has run (a spec only looked up, never executed, changes nothing)."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _REGISTRY_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        execute = loader.exec_module

        def exec_module(module):
            execute(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            _register()

        loader.exec_module = exec_module
        return spec


def register_when_transformers_loads() -> None:
    """Register now if transformers' quantizer registry is imported, else right after it is (idempotent)."""
    if _REGISTRY_MODULE in sys.modules:
        _register()
    elif not any(isinstance(finder, _RegisterAfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())
