"""``polysparse serve`` as a user runs it: a process that answers on loopback and stops cleanly on Ctrl+C;
mistakes get exit status 2 before anything listens (issue 25)."""

import copy
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import torch

from helpers.sparse_models import sparse_tiny_model
from helpers.tiny_models import tiny_tokenizer
from polysparse.bench.cli import main
from polysparse.runtime.checkpoint import save_sparse
from polysparse.runtime.swap import sparsify_model

openai = pytest.importorskip("openai")

START_TIMEOUT_S = 300  # a cold interpreter imports torch and transformers on a loaded 2-core machine
STOP_TIMEOUT_S = 60  # Ctrl+C to "stopped serving": the serving loop polls every 0.2 s
EXIT_TIMEOUT_S = 60  # "stopped serving" to the exit: the interpreter's teardown, 1-2 s idle, 11-35 s loaded


def _interruptible() -> None:
    # A job started with `&` from a non-interactive shell (nohup make test &) inherits SIGINT ignored, and
    # an ignored signal stays ignored across exec: the server would never see Ctrl+C. Give it the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    """(pruned dense model, tokenizer, compressed folder named ``served-model``)."""
    dense = sparse_tiny_model("llama", dtype=torch.float32, seed=5)
    sparse = copy.deepcopy(dense)
    sparsify_model(sparse)
    tokenizer = tiny_tokenizer()
    folder = tmp_path_factory.mktemp("serve") / "served-model"
    save_sparse(sparse, folder, tokenizer=tokenizer)
    return dense.eval(), tokenizer, folder


def _lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


def test_serve_answers_on_loopback_and_stops_on_ctrl_c(compressed):
    dense, tokenizer, folder = compressed
    process = subprocess.Popen(
        [sys.executable, "-P", "-m", "polysparse.bench.cli", "serve", str(folder), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_interruptible,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True).start()
    errors: queue.Queue = queue.Queue()  # drained so that a full stderr pipe can never block the server
    threading.Thread(target=_lines, args=(process.stderr, errors), daemon=True).start()
    printed, url = [], None
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            printed.append(line)
            if line.startswith("serving 'served-model' at http://127.0.0.1:"):
                url = line.split(" at ")[1].split()[0]
        assert url is not None, "".join(printed)
        assert any("Sparse24Linear" in line and "decode dense" in line for line in printed), printed
        ids = tokenizer("Der Hund", return_tensors="pt")
        with torch.no_grad():
            out = dense.generate(**ids, max_new_tokens=8, do_sample=False)
        expected = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
        with openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=120) as client:
            answer = client.completions.create(
                model="served-model", prompt="Der Hund", max_tokens=8, temperature=0
            )
        assert answer.choices[0].text == expected
        process.send_signal(signal.SIGINT)
        rest = []
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while not rest or rest[-1].strip() != "stopped serving 'served-model'":
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no 'stopped serving' {STOP_TIMEOUT_S} s after Ctrl+C: {rest} {_tail(errors)}")
            assert line is not None, f"exited without saying it stopped: {rest} {_tail(errors)}"
            rest.append(line)
        try:
            returncode = process.wait(timeout=EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"stopped serving but did not exit in {EXIT_TIMEOUT_S} s: {_tail(errors)}")
        assert returncode == 0, _tail(errors)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def _tail(errors: queue.Queue, keep: int = 20) -> str:
    text = []
    while not errors.empty():
        line = errors.get_nowait()
        if line is not None:
            text.append(line)
    return "stderr: " + "".join(text[-keep:])


def test_mistakes_exit_with_status_2_before_listening(compressed, tmp_path, capsys):
    folder = compressed[2]
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["serve", str(folder), "--port", "70000"]) == 2
    assert "--port must be between 0 and 65535" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["serve", str(folder), "--port", str(taken.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    assert "cannot listen on 127.0.0.1" in err and "Traceback" not in err
