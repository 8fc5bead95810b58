"""The official OpenTelemetry Python SDK exporting GenAI telemetry to the relay's OTLP/HTTP door,
as an AI tool instrumented with OpenTelemetry would.

    otlp_sdk.py RELAY_URL INGEST_TOKEN PROJECT

Traces: two GenAI chat spans (current `gen_ai.*` names, and older ones) and a tool-execution
span, exported as protobuf by the SDK's OTLP/HTTP exporter, then exported again (a retry); two
more spans encoded by the SDK's own OTLP encoder and sent as OTLP/JSON. Metrics: the GenAI
token-usage histogram, exported by the SDK's OTLP/HTTP metric exporter. A malformed body is
answered 400. Prints one line per check and `otlp sdk: N passed`; exits 1 on a failure.
"""

import base64
import json
import sys
import urllib.request

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

relay, token, project = sys.argv[1:4]
headers = {"Authorization": f"Bearer {token}"}
passed = 0


def check(name, ok, detail=""):
    global passed
    if not ok:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    passed += 1
    print(f"ok {name}")


resource = Resource.create({"service.name": "my-agent"})
memory = InMemorySpanExporter()
provider = TracerProvider(resource=resource)
provider.add_span_processor(SimpleSpanProcessor(memory))
tracer = provider.get_tracer("genai-test")

with tracer.start_as_current_span("invoke_agent helper") as agent:
    agent.set_attribute("gen_ai.operation.name", "invoke_agent")
    with tracer.start_as_current_span("chat gpt-4o") as s:
        s.set_attribute("gen_ai.operation.name", "chat")
        s.set_attribute("gen_ai.provider.name", "openai")
        s.set_attribute("gen_ai.request.model", "gpt-4o")
        s.set_attribute("gen_ai.response.model", "gpt-4o")
        s.set_attribute("gen_ai.usage.input_tokens", 1200)
        s.set_attribute("gen_ai.usage.output_tokens", 300)
        s.set_attribute("gen_ai.response.finish_reasons", ["stop"])
        s.set_attribute("gen_ai.conversation.id", "conv-1")
        s.set_attribute("fulcrum.project", project)
        s.set_attribute("fulcrum.category", "refactor")
    with tracer.start_as_current_span("execute_tool read_file") as t:
        t.set_attribute("gen_ai.operation.name", "execute_tool")
        t.set_attribute("gen_ai.request.model", "gpt-4o")
    with tracer.start_as_current_span("openai.chat") as old:
        old.set_attribute("gen_ai.system", "openai")
        old.set_attribute("llm.request.model", "stand-in-1")
        old.set_attribute("gen_ai.usage.prompt_tokens", 70)
        old.set_attribute("gen_ai.usage.completion_tokens", 20)
        old.set_attribute("fulcrum.project", project)
spans = memory.get_finished_spans()
check("four spans recorded", len(spans) == 4, spans)

exporter = OTLPSpanExporter(endpoint=f"{relay}/otlp/v1/traces", headers=headers)
check("protobuf export accepted", exporter.export(spans) == SpanExportResult.SUCCESS)
check("a retry accepted too", exporter.export(spans) == SpanExportResult.SUCCESS)

# OTLP/JSON: the SDK's own encoding of two new spans, in the JSON mapping (ids as hex).
memory.clear()
for i in range(2):
    with tracer.start_as_current_span(f"chat json {i}") as s:
        s.set_attribute("gen_ai.operation.name", "chat")
        s.set_attribute("gen_ai.request.model", "gpt-4o")
        s.set_attribute("gen_ai.usage.input_tokens", 10)
        s.set_attribute("gen_ai.usage.output_tokens", 5)
        s.set_attribute("fulcrum.project", project)
doc = MessageToDict(encode_spans(memory.get_finished_spans()), use_integers_for_enums=True)
for rs in doc["resourceSpans"]:
    for ss in rs["scopeSpans"]:
        for sp in ss["spans"]:
            for key in ("traceId", "spanId", "parentSpanId"):
                if key in sp:
                    sp[key] = base64.b64decode(sp[key]).hex()


def post(path, body, content_type):
    req = urllib.request.Request(
        f"{relay}{path}",
        data=body,
        headers={**headers, "Content-Type": content_type},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read(), r.headers.get("Content-Type")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type")


status, body, ct = post("/otlp/v1/traces", json.dumps(doc).encode(), "application/json")
check("json export accepted", status == 200 and ct == "application/json", (status, body))
check("json answer has no partial failure", json.loads(body).get("partialSuccess") in (None, {}), body)

status, body, ct = post("/otlp/v1/traces", b"\x0a\xff\xff\xff\xff\x0f", "application/x-protobuf")
check("malformed protobuf refused", status == 400 and ct == "application/x-protobuf", (status, body))
status, body, ct = post("/otlp/v1/traces", b"{\"resourceSpans\": 1}", "application/json")
check("malformed json refused", status == 400 and b"not a valid OTLP" in body, (status, body))

# Metrics: the GenAI token usage histogram, by token type.
reader = PeriodicExportingMetricReader(
    OTLPMetricExporter(endpoint=f"{relay}/otlp/v1/metrics", headers=headers),
    export_interval_millis=3_600_000,
)
meters = MeterProvider(resource=resource, metric_readers=[reader])
usage = meters.get_meter("genai-test").create_histogram("gen_ai.client.token.usage", unit="{token}")
for kind, n in (("input", 100), ("input", 50), ("output", 40)):
    usage.record(n, {"gen_ai.token.type": kind, "gen_ai.request.model": "gpt-4o"})
check("metrics exported", meters.force_flush())
meters.shutdown()
provider.shutdown()

print(f"otlp sdk: {passed} passed")
