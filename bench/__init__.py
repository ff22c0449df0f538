"""polysparse.bench: the ``polysparse`` command line, the jobs behind its commands, benchmarks and reports.

Grouped by what they serve: the command line and its jobs here (``cli``, ``options``: options generated from
the settings' fields, ``plans``: the commands' settings, ``jobs``, ``demo``, ``serve``, ``exports``,
``recipes``), the study and the tasks (``studies/``), throughput (``speed/``) and the kernel benchmarks
(``kernels/``). The commands are plain functions of their settings (``prune_job(PruneRun(...),
PruneConfig(...))`` does what ``polysparse prune`` does). Names are imported on first use, so
``python -P -m polysparse.bench.<module>`` runs a module without importing the rest. One-off measurements live
in ``bench/experiments/``, which the wheel leaves out.
"""

from polysparse._packages import lazy_exports, refuse_bare_import

if __name__ != "polysparse.bench":  # the folder imported as a bare top-level package
    refuse_bare_import(__name__)


_EXPORTS = {  # submodule: the public names it defines
    "cli": ("build_parser", "main"),
    "jobs": ("bench_job", "corpora_job", "eval_job", "evaluate_loaded", "prune_job", "study_job"),
    "demo": ("demo_job",),
    "exports": ("export_job",),
    "plans": ("BenchRun", "EvalPlan", "PruneRun", "StudyPlan", "StudyRun", "ThroughputPlan"),
    "user_errors": ("USER_ERRORS",),
}  # fmt: skip

__all__, __getattr__ = lazy_exports(__name__, _EXPORTS)
