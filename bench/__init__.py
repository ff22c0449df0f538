"""polysparse.bench: the ``polysparse`` command line, the jobs behind its commands, benchmarks and reports.

The commands are plain functions of their settings (``prune_job(PruneRun(...), PruneConfig(...))`` does what
``polysparse prune`` does; :mod:`polysparse.bench.plans`). Names are imported on first use, so
``python -P -m polysparse.bench.<module>`` runs a module without importing the rest. One-off measurements live
in ``bench/experiments/``, which the wheel leaves out.
"""

if __name__ != "polysparse.bench":  # the folder imported as a bare top-level package
    raise ImportError(
        f"{__name__}/ of the polysparse repository was imported as the top-level package {__name__!r}: the "
        "repository root is on sys.path (python -m/-c started there); use -P, another folder or `polysparse`"
    )


from polysparse._lazy import lazy_exports

_EXPORTS = {
    "build_parser": "cli",
    "main": "cli",
    "USER_ERRORS": "jobs",
    "bench_job": "jobs",
    "corpora_job": "jobs",
    "eval_job": "jobs",
    "export_job": "jobs",
    "prune_job": "jobs",
    "read_report": "jobs",
    "study_job": "jobs",
    "demo_job": "demo",
}

__all__, __getattr__ = lazy_exports(__name__, _EXPORTS)
