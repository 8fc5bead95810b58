"""The LLM stand-in follows the published contracts: the official OpenAI and Anthropic Python
SDKs talk to it (streamed and not) and read its answers and usage; and the requests the relay's
own client sent are valid `CreateChatCompletionRequest` bodies of OpenAI's OpenAPI description.

    sdk_contract.py BASE_URL KEY REQUESTS_JSON OPENAPI_YAML

BASE_URL is the stand-in's `/v1` base; REQUESTS_JSON a list of chat-completions bodies the relay
sent. Prints one line per check and `sdk contract: N passed` at the end; exits 1 on a failure.
"""

import json
import sys

import anthropic
import jsonschema
import openai
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

base, key, requests_path, spec_path = sys.argv[1:5]
passed = 0


def check(name, ok, detail=""):
    global passed
    if not ok:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    passed += 1
    print(f"ok {name}")


TEXT = "Hello from the stand-in, in several pieces."

# OpenAI: a plain answer, then a stream with usage in its last chunk.
oa = openai.OpenAI(base_url=base, api_key=key, max_retries=0)
r = oa.chat.completions.create(
    model="stand-in-1",
    messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "SDK-HELLO"}],
    max_completion_tokens=64,
)
check("openai answer", r.choices[0].message.content == TEXT, r)
check("openai usage", r.usage.prompt_tokens == 40 and r.usage.completion_tokens == 11, r.usage)
check("openai finish", r.choices[0].finish_reason == "stop", r.choices[0])

parts, usage = [], None
for chunk in oa.chat.completions.create(
    model="stand-in-1",
    messages=[{"role": "user", "content": "SDK-HELLO"}],
    stream=True,
    stream_options={"include_usage": True},
):
    if chunk.choices and chunk.choices[0].delta.content:
        parts.append(chunk.choices[0].delta.content)
    if chunk.usage:
        usage = chunk.usage
check("openai stream", "".join(parts) == TEXT and len(parts) > 1, parts)
check("openai stream usage", usage is not None and usage.completion_tokens == 11, usage)

try:
    openai.OpenAI(base_url=base, api_key="sk-wrong", max_retries=0).chat.completions.create(
        model="stand-in-1", messages=[{"role": "user", "content": "x"}]
    )
    check("openai wrong key", False, "no error")
except openai.AuthenticationError:
    check("openai wrong key", True)

# Anthropic: the SDK adds /v1/messages to its base URL.
an = anthropic.Anthropic(base_url=base.removesuffix("/v1"), api_key=key, max_retries=0)
m = an.messages.create(
    model="stand-in-1",
    max_tokens=64,
    system="Be brief.",
    messages=[{"role": "user", "content": "SDK-HELLO"}],
)
check("anthropic answer", m.content[0].text == TEXT, m)
check("anthropic usage", m.usage.output_tokens == 11 and m.stop_reason == "end_turn", m.usage)
with an.messages.stream(
    model="stand-in-1", max_tokens=64, messages=[{"role": "user", "content": "SDK-HELLO"}]
) as s:
    text = "".join(s.text_stream)
    final = s.get_final_message()
check("anthropic stream", text == TEXT, text)
check("anthropic stream usage", final.usage.output_tokens == 11, final.usage)

# The relay's requests against OpenAI's published description.
with open(spec_path) as f:
    spec = yaml.safe_load(f)
registry = Registry().with_resource("openai", Resource.from_contents(spec, DRAFT202012))
validator = jsonschema.Draft202012Validator(
    {"$ref": "openai#/components/schemas/CreateChatCompletionRequest"}, registry=registry
)
with open(requests_path) as f:
    bodies = json.load(f)
check("relay requests recorded", len(bodies) >= 3, len(bodies))
for i, body in enumerate(bodies):
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
    check(
        f"relay request {i} is a valid CreateChatCompletionRequest",
        not errors,
        "; ".join(f"{list(e.path)}: {e.message[:200]}" for e in errors[:3]),
    )

print(f"sdk contract: {passed} passed")
