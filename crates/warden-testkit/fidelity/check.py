"""Fidelity check: the official SDKs talk to warden-testkit's mocks over TLS.

Run: python3 -m venv /tmp/fid && /tmp/fid/bin/pip install anthropic openai boto3
     /tmp/fid/bin/python crates/warden-testkit/fidelity/check.py
It builds and starts `cargo run -p warden-testkit --example mockd`, then drives every mock
with the real client (unary, stream, tool round trip, error classes, mid-stream errors,
bad frames) and prints 'N passed, N failed'. Not part of `cargo test`: it needs PyPI
packages, so it runs by hand when a mock changes.
"""

import json
import os
import subprocess
import sys
import tempfile

import anthropic
import boto3
import botocore
import httpx2 as httpx
import openai

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
results = []


def case(name):
    def wrap(fn):
        try:
            fn()
            results.append((name, None))
        except Exception as e:  # noqa: BLE001 - report every failure, keep going
            results.append((name, repr(e)))
        return fn
    return wrap


tmp = tempfile.mkdtemp()
proc = subprocess.Popen(
    ["cargo", "run", "-q", "-p", "warden-testkit", "--example", "mockd", "--", tmp],
    cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
)
urls = json.loads(proc.stdout.readline())
CA = urls["ca"]
TOOL = {"name": "get_weather", "description": "Get weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
USER = [{"role": "user", "content": "Weather in Paris?"}]

# ---------------- Anthropic (2.x: Bearer auth, anthropic-version 2026-10-21)
ac = anthropic.Anthropic(base_url=urls["anthropic"], api_key="sk-ant-fidelity", max_retries=0,
                         http_client=httpx.Client(verify=CA))
print("anthropic", anthropic.__version__, "openai", openai.__version__, "boto3", boto3.__version__)


@case("anthropic unary")
def _():
    m = ac.messages.create(model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    assert m.content[0].text == "Hello from the Anthropic mock.", m
    assert m.stop_reason == "end_turn" and m.usage.output_tokens == 12


@case("anthropic stream")
def _():
    with ac.messages.stream(model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "Hello from the Anthropic mock.", text
    assert final.usage.output_tokens == 12 and final.stop_reason == "end_turn"


@case("anthropic tool round trip (unary + stream)")
def _():
    m = ac.messages.create(model="claude-test", max_tokens=64, messages=USER, tools=[TOOL])
    use = [b for b in m.content if b.type == "tool_use"][0]
    assert use.input == {"city": "Paris"} and m.stop_reason == "tool_use"
    with ac.messages.stream(model="claude-test", max_tokens=64, messages=USER, tools=[TOOL]) as s:
        final = s.get_final_message()
    streamed = [b for b in final.content if b.type == "tool_use"][0]
    assert streamed.input == {"city": "Paris"}, streamed
    msgs = USER + [{"role": "assistant", "content": [use.model_dump()]},
                   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18C, sunny"}]}]
    m2 = ac.messages.create(model="claude-test", max_tokens=64, messages=msgs, tools=[TOOL])
    assert m2.content[0].text == "The tool said: 18C, sunny", m2


def fault(f):
    return {"x-warden-mock-fault": f}


@case("anthropic 529 -> OverloadedError, 429 -> RateLimitError with retry-after")
def _():
    try:
        ac.messages.create(model="m", max_tokens=8, messages=USER, extra_headers=fault("status:529"))
        raise AssertionError("no error")
    except anthropic.APIStatusError as e:
        assert type(e).__name__ == "OverloadedError" and e.status_code == 529, type(e)
    try:
        ac.messages.create(model="m", max_tokens=8, messages=USER, extra_headers=fault("status:429:7"))
        raise AssertionError("no error")
    except anthropic.RateLimitError as e:
        assert e.response.headers["retry-after"] == "7"
        assert e.body["error"]["type"] == "rate_limit_error"


@case("anthropic mid-stream error -> APIStatusError with status 200")
def _():
    try:
        with ac.messages.stream(model="m", max_tokens=8, messages=USER, extra_headers=fault("stream_error:3")) as s:
            for _ in s:
                pass
        raise AssertionError("no error")
    except anthropic.APIStatusError as e:
        assert e.status_code == 200 and e.body["error"]["type"] == "overloaded_error", e


# ---------------- OpenAI
oc = openai.OpenAI(base_url=urls["openai"] + "/v1", api_key="sk-openai-fidelity", max_retries=0,
                   http_client=httpx.Client(verify=CA))
OTOOL = [{"type": "function", "function": {"name": "get_weather", "description": "Get weather",
                                            "parameters": TOOL["input_schema"]}}]


@case("openai unary")
def _():
    r = oc.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "Hello from the OpenAI mock." and r.usage.completion_tokens == 9


@case("openai stream with include_usage ends with a usage chunk")
def _():
    chunks = list(oc.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}],
                                             stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the OpenAI mock.", text
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 9
    plain = list(oc.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert all(c.usage is None for c in plain)


@case("openai tool calls (unary + streamed arguments) and tool result")
def _():
    r = oc.chat.completions.create(model="gpt-test", messages=USER, tools=OTOOL)
    call = r.choices[0].message.tool_calls[0]
    assert json.loads(call.function.arguments) == {"city": "Paris"} and r.choices[0].finish_reason == "tool_calls"
    args = ""
    for c in oc.chat.completions.create(model="gpt-test", messages=USER, tools=OTOOL, stream=True):
        for ch in c.choices:
            for tc in ch.delta.tool_calls or []:
                args += tc.function.arguments or ""
    assert json.loads(args) == {"city": "Paris"}, args
    msgs = USER + [{"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                   {"role": "tool", "tool_call_id": call.id, "content": "18C, sunny"}]
    r2 = oc.chat.completions.create(model="gpt-test", messages=msgs, tools=OTOOL)
    assert r2.choices[0].message.content == "The tool said: 18C, sunny"


@case("openai 429 -> RateLimitError, mid-stream error -> APIError")
def _():
    try:
        oc.chat.completions.create(model="m", messages=USER, extra_headers=fault("status:429:3"))
        raise AssertionError("no error")
    except openai.RateLimitError as e:
        assert e.code == "rate_limit_exceeded" and e.response.headers["retry-after"] == "3"
    try:
        for _ in oc.chat.completions.create(model="m", messages=USER, stream=True, extra_headers=fault("stream_error:2")):
            pass
        raise AssertionError("no error")
    except openai.APIError as e:
        assert "server had an error" in e.message, e


# ---------------- Bedrock (boto3 signs differently from the Rust SDK: content-type;host;x-amz-date)
current_fault = {"v": None}


def add_fault(request, **_):
    if current_fault["v"]:
        request.headers["x-warden-mock-fault"] = current_fault["v"]


bc = boto3.client("bedrock-runtime", endpoint_url=urls["bedrock"], region_name="us-east-1",
                  aws_access_key_id="AKIDFIDELITY0000001", aws_secret_access_key="fidelitySecret/abcdefghijklmnop",
                  verify=CA, config=botocore.config.Config(retries={"max_attempts": 1}))
bc.meta.events.register("before-sign.bedrock-runtime.*", add_fault)
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
BUSER = [{"role": "user", "content": [{"text": "Weather in Paris?"}]}]
BTOOLS = {"tools": [{"toolSpec": {"name": "get_weather", "description": "Get weather",
                                  "inputSchema": {"json": TOOL["input_schema"]}}}]}


@case("bedrock converse (boto3 signature verified by the mock)")
def _():
    r = bc.converse(modelId=MODEL, messages=[{"role": "user", "content": [{"text": "hi"}]}])
    assert r["output"]["message"]["content"][0]["text"] == f"Hello from the Bedrock mock ({MODEL}).", r
    assert r["stopReason"] == "end_turn" and r["usage"]["outputTokens"] == 5


@case("bedrock converse_stream frames parse")
def _():
    r = bc.converse_stream(modelId=MODEL, messages=[{"role": "user", "content": [{"text": "hi"}]}])
    events = list(r["stream"])
    names = [list(e)[0] for e in events]
    assert names[0] == "messageStart" and names[-2:] == ["messageStop", "metadata"], names
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text.startswith("Hello from the Bedrock mock"), text


@case("bedrock tool use (unary + stream) and tool result")
def _():
    r = bc.converse(modelId=MODEL, messages=BUSER, toolConfig=BTOOLS)
    use = r["output"]["message"]["content"][0]["toolUse"]
    assert use["input"] == {"city": "Paris"} and r["stopReason"] == "tool_use"
    events = list(bc.converse_stream(modelId=MODEL, messages=BUSER, toolConfig=BTOOLS)["stream"])
    args = "".join(e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events if "contentBlockDelta" in e)
    assert json.loads(args) == {"city": "Paris"}
    msgs = BUSER + [{"role": "assistant", "content": [{"toolUse": use}]},
                    {"role": "user", "content": [{"toolResult": {"toolUseId": use["toolUseId"], "content": [{"text": "18C, sunny"}]}}]}]
    r2 = bc.converse(modelId=MODEL, messages=msgs, toolConfig=BTOOLS)
    assert r2["output"]["message"]["content"][0]["text"] == "The tool said: 18C, sunny"


@case("bedrock 429 -> ThrottlingException, stream exception frame, bad CRC")
def _():
    current_fault["v"] = "status:429"
    try:
        bc.converse(modelId=MODEL, messages=BUSER)
        raise AssertionError("no error")
    except botocore.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == "ThrottlingException", e.response
    current_fault["v"] = "stream_error:2"
    try:
        list(bc.converse_stream(modelId=MODEL, messages=BUSER)["stream"])
        raise AssertionError("no error")
    except botocore.exceptions.EventStreamError as e:
        assert e.response["Error"]["Code"] == "throttlingException", e.response
    current_fault["v"] = "malformed:2"
    try:
        list(bc.converse_stream(modelId=MODEL, messages=BUSER)["stream"])
        raise AssertionError("no error")
    except botocore.eventstream.ChecksumMismatch:
        pass
    current_fault["v"] = None


@case("bedrock refuses a wrong secret (403)")
def _():
    bad = boto3.client("bedrock-runtime", endpoint_url=urls["bedrock"], region_name="us-east-1",
                       aws_access_key_id="AKIDFIDELITY0000001", aws_secret_access_key="wrong",
                       verify=CA, config=botocore.config.Config(retries={"max_attempts": 1}))
    try:
        bad.converse(modelId=MODEL, messages=BUSER)
        raise AssertionError("no error")
    except botocore.exceptions.ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403


proc.stdin.close()
print(proc.stdout.readline().strip())
proc.wait(timeout=30)
failed = [(n, e) for n, e in results if e]
for n, e in results:
    print(("ok   " if not e else "FAIL ") + n + ("" if not e else ": " + e))
print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
