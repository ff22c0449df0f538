"""polysparse serve's server (runtime/serving) on loopback, through the ``openai`` client (issue 25).

A tiny random Llama is pruned 2:4 (the pruned dense model: the reference) and saved compressed; the server
answers from the compressed folder. Every wait is bounded (client timeouts, joins with timeouts).
"""

import copy
import http.client
import json
import socket
import urllib.error
import urllib.request

import pytest
import torch

from helpers.sparse_models import sparse_tiny_model
from helpers.tiny_models import tiny_tokenizer
from polysparse.runtime.checkpoint import save_sparse
from polysparse.runtime.serving import MAX_BODY_BYTES, OpenAIServer, load_served_model
from polysparse.runtime.serving.generation import first_stop, stable_length
from polysparse.runtime.serving.requests import RequestError, parse_chat, parse_completion
from polysparse.runtime.swap import sparsify_model

openai = pytest.importorskip("openai")

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
PROMPTS = ["Der Hund läuft", "Le chat dort sur le canapé", "Polysparse prunes"]
NAME = "tiny-compressed"


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    """(pruned dense model, its tokenizer, the compressed folder)."""
    dense = sparse_tiny_model("llama", dtype=torch.float32, seed=3)
    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    sparse = copy.deepcopy(dense)
    sparsify_model(sparse)
    folder = tmp_path_factory.mktemp("serve") / NAME
    save_sparse(sparse, folder, tokenizer=tokenizer)
    return dense.eval(), tokenizer, folder


@pytest.fixture(scope="module")
def server(pruned):
    served = load_served_model(pruned[2], device="cpu")
    with OpenAIServer(served, host="127.0.0.1", port=0) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=120) as connected:
        yield connected


def greedy_text(model, tokenizer, inputs, max_tokens):
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1] :]
    return tokenizer.decode(new, skip_special_tokens=True), len(new)


def test_the_model_is_named_by_its_folder_and_runs_sparse_layers(client, server):
    assert [model.id for model in client.models.list()] == [NAME]
    with urllib.request.urlopen(server.url + "/polysparse/backends", timeout=30) as response:
        report = json.loads(response.read())
    sparse = [row for row in report["layers"] if row["kind"] == "sparse"]
    assert sum(row["layers"] for row in sparse) == 21  # 3 blocks x 7 linear layers
    assert {row["decode"] for row in sparse} == {"dense"} and "off CUDA" in sparse[0]["reason"]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_completion_equals_generate_on_the_pruned_dense_model(client, pruned, prompt):
    dense, tokenizer, _ = pruned
    expected, count = greedy_text(dense, tokenizer, tokenizer(prompt, return_tensors="pt"), 12)
    answer = client.completions.create(model=NAME, prompt=prompt, max_tokens=12, temperature=0)
    assert answer.choices[0].text == expected
    assert answer.usage.completion_tokens == count
    assert answer.choices[0].finish_reason == ("length" if count == 12 else "stop")
    stream = client.completions.create(model=NAME, prompt=prompt, max_tokens=12, temperature=0, stream=True)
    chunks = list(stream)
    assert "".join(chunk.choices[0].text for chunk in chunks) == expected
    assert chunks[-1].choices[0].finish_reason == answer.choices[0].finish_reason


def test_chat_completion_uses_the_chat_template(client, pruned):
    dense, tokenizer, _ = pruned
    messages = [{"role": "system", "content": "Kurz."}, {"role": "user", "content": "Der Hund"}]
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
    )
    expected, _ = greedy_text(dense, tokenizer, dict(inputs), 10)
    answer = client.chat.completions.create(model=NAME, messages=messages, max_tokens=10, temperature=0)
    assert answer.choices[0].message.content == expected and answer.choices[0].message.role == "assistant"
    stream = client.chat.completions.create(
        model=NAME,
        messages=messages,
        max_tokens=10,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
    assert chunks[-1].usage.completion_tokens == answer.usage.completion_tokens


def test_a_stop_sequence_cuts_both_answers_at_the_same_place(client, pruned):
    dense, tokenizer, _ = pruned
    full, _ = greedy_text(dense, tokenizer, tokenizer(PROMPTS[0], return_tensors="pt"), 12)
    stop = full[3:5]
    assert stop  # the reference continuation is long enough to cut
    answer = client.completions.create(model=NAME, prompt=PROMPTS[0], max_tokens=12, temperature=0, stop=stop)
    assert answer.choices[0].text == full[: full.index(stop)]
    assert answer.choices[0].finish_reason == "stop"
    stream = client.completions.create(
        model=NAME, prompt=PROMPTS[0], max_tokens=12, temperature=0, stop=[stop], stream=True
    )
    assert "".join(chunk.choices[0].text for chunk in stream) == answer.choices[0].text


def test_sampling_with_a_seed_is_repeatable(client):
    answers = [
        client.completions.create(model=NAME, prompt=PROMPTS[1], max_tokens=8, temperature=1.0, seed=7)
        for _ in range(2)
    ]
    assert answers[0].choices[0].text == answers[1].choices[0].text


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"max_tokens": -1}, "max_tokens must be at least 1"),
        ({"n": 2}, "n=2 is not supported"),
        ({"temperature": 3}, "temperature must be between"),
        ({"stop": [""]}, "stop must be"),
        ({"max_tokens": 300}, "exceed the model's context of 256 tokens"),
        ({"logprobs": 2}, "logprobs=2 is not supported"),
    ],
)
def test_a_bad_request_gets_a_400_with_its_reason(client, arguments, message):
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model=NAME, prompt="x", **arguments)
    assert caught.value.status_code == 400 and message in caught.value.message


def test_another_model_is_a_404(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.completions.create(model="gpt-4o", prompt="x", max_tokens=2)
    assert NAME in caught.value.message


def raw_post(server, path, data: bytes, content_type="application/json"):
    request = urllib.request.Request(server.url + path, data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_malformed_bodies_and_paths_get_4xx_error_bodies(server):
    status, body = raw_post(server, "/completions", b"{not json")
    assert status == 400 and "not valid JSON" in body["error"]["message"]
    status, body = raw_post(server, "/completions", b"[1, 2]")
    assert status == 400 and "JSON object" in body["error"]["message"]
    status, body = raw_post(server, "/chat/completions", json.dumps({"model": NAME, "messages": []}).encode())
    assert status == 400 and "messages" in body["error"]["message"]
    status, body = raw_post(server, "/embeddings", b"{}")
    assert status == 404 and body["error"]["type"] == "invalid_request_error"
    host, port = server.httpd.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:  # the declared size is refused before any of the body is read (none is sent)
        connection.putrequest("POST", "/v1/completions")
        connection.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 413 and "larger than" in json.loads(response.read())["error"]["message"]
    finally:
        connection.close()


def test_the_server_stops_cleanly(pruned):
    served = load_served_model(pruned[2], device="cpu")
    running = OpenAIServer(served, port=0).start()
    port = running.httpd.server_address[1]
    with openai.OpenAI(base_url=running.url, api_key="unused", max_retries=0, timeout=60) as client:
        assert client.completions.create(model=NAME, prompt="a", max_tokens=2, temperature=0).choices
    running.stop()
    assert running._thread is None  # the serving loop ended
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


def test_a_folder_without_tokenizer_or_model_is_refused(tmp_path, pruned):
    from polysparse.sparsify.loading import ModelLoadError

    with pytest.raises(ModelLoadError, match="does not exist"):
        load_served_model(tmp_path / "missing")
    bare = tmp_path / "bare"
    bare.mkdir()
    for item in pruned[2].iterdir():
        if not item.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            (bare / item.name).write_bytes(item.read_bytes())
    with pytest.raises(ModelLoadError, match="tokenizer"):
        load_served_model(bare)


# --- the pure parts ------------------------------------------------------------------------------------


def test_first_stop_is_where_a_stream_would_stop():
    assert first_stop("abcde", ["cd", "bcde"]) == 2  # "cd" ends first
    assert first_stop("abcde", ["bc", "abc"]) == 0  # both end at 3: the longer one
    assert first_stop("abc", ["x"]) is None
    text, stops = "hello wor", ["world"]
    assert text[: stable_length(text, stops)] == "hello"  # "wor" may become "world"
    assert stable_length("ab\ufffd", []) == 2  # an unfinished character is held back


def test_request_parsing():
    request = parse_completion({"model": "m", "prompt": ["hi"], "temperature": 0, "stop": "x"}, "m")
    assert request.prompt == "hi" and request.sampling.greedy and request.sampling.stop == ("x",)
    assert request.sampling.max_tokens == 16
    chat = parse_chat(
        {"model": "m", "messages": [{"role": "developer", "content": [{"type": "text", "text": "a"}]}]}, "m"
    )
    assert chat.messages == ({"role": "system", "content": "a"},) and chat.sampling.max_tokens == 256
    with pytest.raises(RequestError, match="prompt must be one string"):
        parse_completion({"model": "m", "prompt": [1, 2]}, "m")
    with pytest.raises(RequestError, match="only text parts"):
        parse_chat({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "m")
