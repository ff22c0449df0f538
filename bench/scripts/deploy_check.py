"""Issue 25's "done when", checked on the demo's output (run by deploy_check.sh, outside the repository root).

1. ``import polysparse, transformers; AutoModelForCausalLM.from_pretrained(DEMO/compressed)``: which modules
   the linear layers are, how long loading took;
2. the same load in a fresh interpreter without ``import polysparse``: the refusal and its message;
3. ``polysparse serve DEMO/compressed --port 0`` in its own process, answered through the ``openai`` client
   (completions, whole and streamed, and chat when the tokenizer has a template), greedy, against
   ``generate`` on the pruned dense model ``DEMO`` (loaded by plain from_pretrained); then Ctrl+C.

Usage: python -P deploy_check.py DEMO_FOLDER OUT_JSON
"""

from __future__ import annotations

import json
import platform
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

PROMPTS = (
    "Debian ist ein freies Betriebssystem, das",
    "Der Paketmanager apt installiert",
)
CHAT = [{"role": "user", "content": "Was ist Debian?"}]
MAX_TOKENS = 32
START_TIMEOUT_S = 600


def _greedy(model, tokenizer, inputs, max_tokens=MAX_TOKENS):
    import torch

    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1] :]
    return tokenizer.decode(new, skip_special_tokens=True), int(new.numel())


def _load_check(compressed: Path) -> dict:
    import transformers

    import polysparse  # noqa: F401  (registers the quantizer: what this step checks)

    start = time.perf_counter()
    model = transformers.AutoModelForCausalLM.from_pretrained(compressed)
    seconds = time.perf_counter() - start
    kinds: dict[str, int] = {}
    for module in model.modules():
        if type(module).__name__ in ("Sparse24Linear", "Linear"):
            kinds[type(module).__name__] = kinds.get(type(module).__name__, 0) + 1
    return {
        "class": type(model).__name__,
        "dtype": str(model.dtype),
        "linear_modules": kinds,
        "quantization_config": model.config.quantization_config.to_dict(),
        "load_seconds": round(seconds, 2),
    }


def _refusal_check(compressed: Path) -> dict:
    script = f"import transformers\ntransformers.AutoModelForCausalLM.from_pretrained({str(compressed)!r})\n"
    proc = subprocess.run([sys.executable, "-P", "-c", script], capture_output=True, text=True, timeout=600)
    return {"exit_status": proc.returncode, "last_line": proc.stderr.strip().splitlines()[-1]}


def _reader(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


def _serve_check(demo: Path, compressed: Path) -> dict:
    import openai
    import transformers

    dense = transformers.AutoModelForCausalLM.from_pretrained(demo).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(demo)
    command = [sys.executable, "-P", "-m", "polysparse.bench.cli", "serve", str(compressed), "--port", "0"]
    started = time.perf_counter()
    # Ctrl+C must reach it even when this check runs as a background job (`cmd &` starts jobs with SIGINT
    # ignored, and exec keeps an ignored signal ignored).
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(process.stdout, lines), daemon=True).start()
    printed, url = [], None
    try:
        while url is None:
            line = lines.get(timeout=START_TIMEOUT_S)
            if line is None:
                raise RuntimeError("polysparse serve exited:\n" + "".join(printed))
            printed.append(line.rstrip("\n"))
            if line.startswith("serving "):
                url = line.split(" at ")[1].split()[0]
        ready = time.perf_counter() - started
        name = compressed.resolve().name
        results = []
        with openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=600) as client:
            for prompt in PROMPTS:
                expected, count = _greedy(dense, tokenizer, tokenizer(prompt, return_tensors="pt"))
                settings = {"model": name, "prompt": prompt, "max_tokens": MAX_TOKENS, "temperature": 0}
                whole = client.completions.create(**settings)
                streamed = client.completions.create(**settings, stream=True)
                stream_text = "".join(chunk.choices[0].text for chunk in streamed)
                results.append(
                    {
                        "endpoint": "/v1/completions",
                        "prompt": prompt,
                        "served": whole.choices[0].text,
                        "pruned_dense_generate": expected,
                        "equal": whole.choices[0].text == expected,
                        "tokens_served": whole.usage.completion_tokens,
                        "tokens_dense": count,
                        "stream_equal": stream_text == whole.choices[0].text,
                    }
                )
            if tokenizer.chat_template:
                inputs = tokenizer.apply_chat_template(
                    CHAT, add_generation_prompt=True, return_dict=True, return_tensors="pt"
                )
                expected, count = _greedy(dense, tokenizer, dict(inputs))
                chat = client.chat.completions.create(
                    model=name, messages=CHAT, max_tokens=MAX_TOKENS, temperature=0
                )
                results.append(
                    {
                        "endpoint": "/v1/chat/completions",
                        "messages": CHAT,
                        "served": chat.choices[0].message.content,
                        "pruned_dense_generate": expected,
                        "equal": chat.choices[0].message.content == expected,
                        "tokens_served": chat.usage.completion_tokens,
                        "tokens_dense": count,
                    }
                )
            with client.with_options(timeout=60) as short:
                backends = short.get("/polysparse/backends", cast_to=object)
        process.send_signal(signal.SIGINT)
        exit_status = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=60)
    while (line := lines.get(timeout=60)) is not None:
        printed.append(line.rstrip("\n"))
    return {
        "command": " ".join(["polysparse", *command[4:]]),
        "seconds_to_ready": round(ready, 1),
        "printed": printed,
        "requests": results,
        "backends": backends,
        "exit_status_after_ctrl_c": exit_status,
    }


def main(demo_folder: str, out_json: str) -> int:
    import torch
    import transformers

    demo = Path(demo_folder).resolve()
    compressed = demo / "compressed"
    record = {
        "check": "issue 25: from_pretrained and polysparse serve on the demo's compressed folder",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"no GPU: {not torch.cuda.is_available()}",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "demo": str(demo),
        "from_pretrained": _load_check(compressed),
        "plain_load_without_import": _refusal_check(compressed),
        "serve": _serve_check(demo, compressed),
    }
    Path(out_json).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    ok = (
        record["from_pretrained"]["linear_modules"].get("Sparse24Linear", 0) > 0
        and record["plain_load_without_import"]["exit_status"] != 0
        and all(r["equal"] and r.get("stream_equal", True) for r in record["serve"]["requests"])
        and record["serve"]["exit_status_after_ctrl_c"] == 0
    )
    print(json.dumps(record, indent=2, ensure_ascii=False))
    print("deploy check:", "passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
