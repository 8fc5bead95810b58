"""The official OpenAI and Anthropic Python SDKs, pointed at the relay's LLM gateway with a
Fulcrum API token as their key, as any tool with a base URL would be.

    gateway_sdk.py GATEWAY_BASE TOKEN PROJECT MODE

GATEWAY_BASE is `<relay>/llm/v1`. MODE `calls` makes five calls (each SDK, streamed and not) and
checks the answers arrive unchanged; MODE `over-budget` checks both SDKs get their own
rate-limit error naming the budget, with no retries; MODE `bad-token` checks both get their
authentication error. Prints one line per check and `gateway sdk: N passed`; exits 1 on a
failure.
"""

import sys

import anthropic
import openai

base, token, project, mode = sys.argv[1:5]
passed = 0
TEXT = "Hello from the stand-in, in several pieces."
headers = {"X-Fulcrum-Project": project}


def check(name, ok, detail=""):
    global passed
    if not ok:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    passed += 1
    print(f"ok {name}")


oa = openai.OpenAI(base_url=base, api_key=token, default_headers=headers)
an = anthropic.Anthropic(base_url=base.removesuffix("/v1"), api_key=token, default_headers=headers)
# The Anthropic SDK appends /v1/messages to its base URL.

if mode == "calls":
    r = oa.chat.completions.create(
        model="stand-in-1",
        messages=[{"role": "user", "content": "SDK-HELLO plain"}],
        max_completion_tokens=64,
    )
    check("openai answer", r.choices[0].message.content == TEXT, r)
    check("openai usage", r.usage.prompt_tokens == 40 and r.usage.completion_tokens == 11, r.usage)

    parts, usage_chunks = [], 0
    for chunk in oa.chat.completions.create(
        model="stand-in-1",
        messages=[{"role": "user", "content": "SDK-HELLO stream"}],
        stream=True,
        max_tokens=64,
    ):
        if chunk.usage:
            usage_chunks += 1
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    check("openai stream", "".join(parts) == TEXT and len(parts) > 1, parts)
    check("openai stream has no usage it did not ask for", usage_chunks == 0, usage_chunks)

    usage = None
    for chunk in oa.chat.completions.create(
        model="stand-in-1",
        messages=[{"role": "user", "content": "SDK-HELLO usage"}],
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=64,
    ):
        if chunk.usage:
            usage = chunk.usage
    check("openai stream usage when asked", usage is not None and usage.completion_tokens == 11, usage)

    m = an.messages.create(
        model="stand-in-1",
        max_tokens=64,
        messages=[{"role": "user", "content": "SDK-HELLO anthropic"}],
    )
    check("anthropic answer", m.content[0].text == TEXT, m)
    check("anthropic usage", m.usage.input_tokens == 40 and m.usage.output_tokens == 11, m.usage)

    with an.messages.stream(
        model="stand-in-1",
        max_tokens=64,
        messages=[{"role": "user", "content": "SDK-HELLO anthropic stream"}],
    ) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    check("anthropic stream", text == TEXT, text)
    check("anthropic stream usage", final.usage.output_tokens == 11, final.usage)

elif mode == "over-budget":
    try:
        oa.chat.completions.create(
            model="stand-in-1",
            messages=[{"role": "user", "content": "SDK-HELLO refused"}],
            max_completion_tokens=64,
        )
        check("openai refused", False, "the call went through")
    except openai.RateLimitError as e:
        check("openai refused", e.status_code == 429 and "budget" in str(e), e)
        check("openai error shape", e.body.get("type") == "insufficient_quota", e.body)
    try:
        an.messages.create(
            model="stand-in-1",
            max_tokens=64,
            messages=[{"role": "user", "content": "SDK-HELLO refused"}],
        )
        check("anthropic refused", False, "the call went through")
    except anthropic.RateLimitError as e:
        check("anthropic refused", e.status_code == 429 and "budget" in str(e), e)
        check("anthropic error shape", e.body["error"]["type"] == "rate_limit_error", e.body)

elif mode == "bad-token":
    try:
        oa.chat.completions.create(
            model="stand-in-1", messages=[{"role": "user", "content": "x"}], max_tokens=8
        )
        check("openai unauthorized", False, "the call went through")
    except openai.AuthenticationError as e:
        check("openai unauthorized", e.status_code == 401, e)
    try:
        an.messages.create(
            model="stand-in-1", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
        check("anthropic unauthorized", False, "the call went through")
    except anthropic.AuthenticationError as e:
        check("anthropic unauthorized", e.status_code == 401, e)

print(f"gateway sdk: {passed} passed")
