"""Output folders: stale partial copies of dead runs are removed, those of live processes left alone."""

import logging
import subprocess
import sys

from polysparse.sparsify.output import atomic_output_folder, clean_stale_partials


def test_partial_folders_of_dead_processes_go_and_live_ones_stay(tmp_path, caplog):
    finished = subprocess.run(
        [sys.executable, "-P", "-c", "import os; print(os.getpid())"], capture_output=True
    )
    dead_pid = int(finished.stdout)
    live = subprocess.Popen([sys.executable, "-P", "-c", "import time; time.sleep(60)"])
    try:
        dead_copy = tmp_path / f".model.partial-{dead_pid}"
        live_copy = tmp_path / f".model.partial-{live.pid}"
        other = tmp_path / f".other.partial-{dead_pid}"
        for folder in (dead_copy, live_copy, other):
            folder.mkdir()
            (folder / "model.safetensors").write_bytes(b"x" * 10)
        with caplog.at_level(logging.WARNING), atomic_output_folder(tmp_path / "model") as tmp:
            (tmp / "done").write_text("")
        assert not dead_copy.exists() and live_copy.exists() and other.exists()
        assert f"left by an interrupted save (pid {dead_pid}" in caplog.text
        assert f"belongs to a running process (pid {live.pid})" in caplog.text
        assert (tmp_path / "model" / "done").exists()
        assert clean_stale_partials(tmp_path / "other") == [other]
        previous = tmp_path / f".other.old-{dead_pid}"
        previous.mkdir()
        assert clean_stale_partials(tmp_path / "other") == [] and previous.exists()
        assert "an --overwrite run" in caplog.text
    finally:
        live.kill()
        live.wait()
