// The whole pipeline with real parts: a Python service on the OpenTelemetry Python SDK ->
// a real otelcol (built with ocb from otel-config/builder-config.yaml, configured with
// otel-config/collector.yaml) -> Jaeger, with a copy of the spans to `causeway run`, whose
// kernel spans come back through the collector into the same trace in Jaeger.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT, SIM_CUDART, kernelAvailable, privateGpu, startWorkload } from '../bpf/session.js';
import { startSidecar } from '../cli/sidecar.js';
import { freePort, getTrace, pythonBin, spansOf, startCollector, startJaeger, type OtlpSpan } from './backends.js';

const attribute = (span: OtlpSpan, key: string) => {
  const value = span.attributes?.find((a) => a.key === key)?.value;
  return value?.stringValue ?? value?.doubleValue ?? (value?.intValue === undefined ? value?.boolValue : Number(value.intValue));
};
const durationMs = (span: OtlpSpan) => Number(BigInt(span.endTimeUnixNano) - BigInt(span.startTimeUnixNano)) / 1e6;

test('a 200 ms GPU sync inside a Python request shows in Jaeger as a cuda.sync child span of the request span', async (t) => {
  if (!kernelAvailable(t)) return;
  const jaeger = await startJaeger();
  t.after(() => jaeger.stop());
  const causewayPort = await freePort();
  const collector = await startCollector(join(ROOT, 'otel-config', 'collector.yaml'), {
    JAEGER_OTLP_GRPC: jaeger.otlpGrpc,
    CAUSEWAY_OTLP_GRPC: `127.0.0.1:${String(causewayPort)}`,
  });
  t.after(() => collector.stop());
  const sidecar = await startSidecar(`http://${collector.kernelGrpc}`, `127.0.0.1:${String(causewayPort)}`);
  t.after(() => sidecar.stop());

  const app = startWorkload(pythonBin, [join(ROOT, 'test', 'fixtures', 'apps', 'python_gpu_service.py'), SIM_CUDART, '200'], {
    ...privateGpu(t),
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://${collector.otlpGrpc}`,
  });
  const truth = (await app.truth) as { trace_id: string; span_id: string; pid: number; tid: number; stream: string };

  const sync = (spans: OtlpSpan[]) => spans.find((s) => s.parentSpanId === truth.span_id && attribute(s, 'causeway.kind') === 'cuda.sync');
  const trace = await getTrace(jaeger.queryUrl, truth.trace_id, { timeoutMs: 30_000, until: (tr) => sync(spansOf(tr)) !== undefined });
  assert.ok(trace, `trace ${truth.trace_id} not in Jaeger; sidecar: ${sidecar.log()}`);
  const spans = spansOf(trace);
  const request = spans.find((s) => s.spanId === truth.span_id);
  assert.equal(request?.name, 'handle-request');
  const child = sync(spans);
  assert.ok(child, `no cuda.sync child span; spans: ${spans.map((s) => s.name).join(', ')}`);
  assert.equal(child.name, 'cudaStreamSynchronize');
  assert.ok(Math.abs(durationMs(child) - 200) <= 20, `cuda.sync lasted ${durationMs(child)} ms`);
  assert.equal(attribute(child, 'causeway.thread.tid'), truth.tid);
  assert.equal(BigInt(String(attribute(child, 'causeway.cuda.stream'))), BigInt(truth.stream));
  assert.equal(attribute(child, 'causeway.attach.scope'), 'thread');

  const summary = spans.find((s) => s.parentSpanId === truth.span_id && s.name === 'kernel activity');
  assert.ok(summary);
  assert.ok(Number(attribute(summary, 'causeway.cuda.sync.duration_ms')) >= 180);
  assert.equal(attribute(summary, 'causeway.cuda.launch.count'), 1);
  assert.equal(summary.events?.find((e) => e.name === 'cuda.launch')?.attributes?.find((a) => a.key === 'causeway.cuda.kernel')?.value.stringValue, 'matmul_big(float*, float*, float*, int)');
});
