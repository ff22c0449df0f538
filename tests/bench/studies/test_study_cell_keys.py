"""The cell names of issue 23's study (bench/scripts/tasks_answer.sh) as its first run computed them on the
old layout: the cells already finished (dense, magnitude 2:4, SparseGPT calibrated on English) are found
again and never recomputed. The plan is built from the command line, as the script builds it."""

from polysparse.bench.cli import build_parser
from polysparse.bench.options import from_args
from polysparse.bench.plans import StudyPlan
from polysparse.bench.studies.study import eval_cell_key, study_rows, task_cell_key
from polysparse.sparsify.corpora import SourceSpec

TASKS = "translation-choice:X->en:gettext,en=translation-choice:en->de:gettext,continuation-choice:X:handbook"
ARGS = [
    "study",
    "--model",
    "gemma-3-270m",
    "--langs",
    "en,de,ru,zh",
    "--pattern",
    "2:4",
    "--calib-source",
    "handbook",
    "--eval-source",
    "install-guide",
    "--translate-source",
    "gettext",
    "--translate-langs",
    "ru",
    "--nsamples",
    "16",
    "--seqlen",
    "512",
    "--eval-windows",
    "4",
    "--eval-seqlen",
    "256",
    "--tasks",
    TASKS,
    "--task-limit",
    "translation-choice=300,continuation-choice=200",
    "--out",
    "out",
    "--method",
    "sparsegpt",
    "--recipe",
    "sparsegpt 2:4 +admm +recon",
    "--recipe-calib",
    "de,mix",
]

# Folder names in /work/runs-23/cells, written by issue-23's code before the move to bench/studies/.
FINISHED_ROWS = {
    "dense": "dense-35080f196c90",
    "magnitude 2:4": "magnitude-2-4-14f84181878d",
    "sparsegpt calib=en": "sparsegpt-calib-en-37eb0db137d1",
}
FINISHED_TASKS = {
    (
        "translation-choice:en->de:gettext",
        "translation-choice",
    ): "task-translation-choice-en--de-gettext-b4e327fea02a",
    (
        "translation-choice:ru->en:gettext",
        "translation-choice",
    ): "task-translation-choice-ru--en-gettext-826267335a0c",
    (
        "continuation-choice:zh:handbook",
        "continuation-choice",
    ): "task-continuation-choice-zh-handbook-8decfd211bd9",
}


def study_plan(args=ARGS) -> StudyPlan:
    return from_args(StudyPlan, build_parser().parse_args(args))


def test_the_command_line_gives_issue_23s_plan():
    plan = study_plan()
    assert plan.task_limit == 500
    assert plan.task_limits == (("translation-choice", 300), ("continuation-choice", 200))
    assert plan.translate_langs == ("ru",) and plan.recipe_calibs == ("de", "mix")
    assert plan.tasks == tuple(TASKS.split(","))
    assert study_plan([*ARGS, "--task-limit", "40"]).task_limit == 40


def test_finished_cells_keep_their_names():
    plan = study_plan()
    keys = {row.label: row.key(plan) for row in study_rows(plan)}
    assert {label: keys[label] for label in FINISHED_ROWS} == FINISHED_ROWS
    for (name, kind), cell in FINISHED_TASKS.items():
        assert task_cell_key(plan, name, kind) == cell
    assert eval_cell_key(plan, SourceSpec.of("install-guide", "de")) == "install-guide_de-4x256-s0"
    assert [row.label for row in study_rows(plan)][-3:] == [
        "sparsegpt calib=translate ru->en",
        "sparsegpt 2:4 +admm +recon calib=de",
        "sparsegpt 2:4 +admm +recon calib=mix(en+de+ru+zh)",
    ]
    # A Wanda run of the same study shares the dense and magnitude cells.
    wanda = study_plan([*ARGS[: ARGS.index("--method")], "--method", "wanda"])
    shared = {row.label: row.key(wanda) for row in study_rows(wanda)}
    assert shared["dense"] == FINISHED_ROWS["dense"]
    assert shared["magnitude 2:4"] == FINISHED_ROWS["magnitude 2:4"]
