// The whole pipeline with real parts: a Python service on the OpenTelemetry Python SDK ->
// a real otelcol (built with ocb from otel-config/builder-config.yaml, configured with
// otel-config/collector.yaml) -> Jaeger, with a copy of the spans to `causeway run`, whose
// kernel spans come back through the collector into the same trace in Jaeger.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Explanation } from '../../src/correlate/explanation.js';
import { ROOT, kernelAvailable, privateGpu, startWorkload } from '../bpf/session.js';
import { startSidecar, until } from '../cli/sidecar.js';
import {
  attribute,
  freePort,
  getTrace,
  spansOf,
  startCollector,
  startJaeger,
  type OtlpSpan,
  type OtlpTrace,
} from './backends.js';
import { runGpuService } from './gpu-service.js';
import { startPipeline } from './pipeline.js';

const durationMs = (span: OtlpSpan) => Number(BigInt(span.endTimeUnixNano) - BigInt(span.startTimeUnixNano)) / 1e6;

test('a 200 ms GPU sync inside a Python request shows in Jaeger as a cuda.sync child span of the request span', async (t) => {
  if (!kernelAvailable(t)) return;
  const { jaeger, collector, sidecar } = await startPipeline(t);
  const truth = await runGpuService(sidecar, 200, {
    ...privateGpu(t),
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://${collector.otlpGrpc}`,
  });

  const sync = (spans: OtlpSpan[]) =>
    spans.find((s) => s.parentSpanId === truth.span_id && attribute(s, 'causeway.kind') === 'cuda.sync');
  const trace = await getTrace(jaeger.queryUrl, truth.trace_id, {
    timeoutMs: 30_000,
    until: (tr) => sync(spansOf(tr)) !== undefined,
  });
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
  assert.equal(
    summary.events?.find((e) => e.name === 'cuda.launch')?.attributes?.find((a) => a.key === 'causeway.cuda.kernel')
      ?.value.stringValue,
    'matmul_big(float*, float*, float*, int)',
  );
});

test('cluster mode: a sidecar whose store never saw the trace explains it from Jaeger, where the kernel spans went', async (t) => {
  if (!kernelAvailable(t)) return;
  const { jaeger, collector, sidecar } = await startPipeline(t);
  const truth = await runGpuService(sidecar, 200, {
    ...privateGpu(t),
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://${collector.otlpGrpc}`,
  });
  await getTrace(jaeger.queryUrl, truth.trace_id, {
    timeoutMs: 30_000,
    until: (tr) => spansOf(tr).some((s) => s.parentSpanId === truth.span_id && s.name === 'cudaStreamSynchronize'),
  });

  // Another node's sidecar: its store is empty, its backend is the shared Jaeger.
  const other = await startSidecar('http://127.0.0.1:9', '127.0.0.1:0', [
    '--query-backend',
    `jaeger=${jaeger.queryUrl}`,
  ]);
  t.after(() => other.stop());
  const explain = async (mcpUrl: string) => {
    const client = new Client({ name: 'cluster-test', version: '1' });
    await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl)));
    try {
      return (await client.callTool({ name: 'explain_trace', arguments: { trace_id: truth.trace_id } }))
        .structuredContent as Explanation;
    } finally {
      await client.close();
    }
  };
  const remote = await explain(other.mcpUrl);
  assert.match(remote.source, /jaeger/);
  assert.equal(remote.root_cause?.kind, 'cuda.sync');
  assert.match(remote.root_cause.culprit?.cuda_kernel ?? '', /^matmul_big\(/);
  const local = await explain(sidecar.mcpUrl);
  assert.equal(local.source, 'local store');
  assert.equal(local.root_cause?.kind, remote.root_cause.kind);
  assert.ok(
    Math.abs(local.duration_ms - remote.duration_ms) < 1,
    `${String(local.duration_ms)} against ${String(remote.duration_ms)} ms`,
  );
});

test('a Node service doing fsync in a span shows its block I/O and blocked time as child spans in Jaeger', async (t) => {
  if (!kernelAvailable(t)) return;
  const { jaeger, collector } = await startPipeline(t);
  const app = startWorkload(
    process.execPath,
    [join(ROOT, 'test', 'fixtures', 'apps', 'node_fsync_service.mjs'), '/var/tmp', '32'],
    {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://${collector.otlpGrpc}`,
    },
  );
  const truth = (await app.truth) as { trace_id: string; span_id: string; pid: number };
  const children = (spans: OtlpSpan[]) => spans.filter((s) => s.parentSpanId === truth.span_id);
  const trace = await getTrace(jaeger.queryUrl, truth.trace_id, {
    timeoutMs: 30_000,
    until: (tr) => children(spansOf(tr)).some((s) => s.name === 'kernel activity'),
  });
  assert.ok(trace);
  const kids = children(spansOf(trace));
  const summary = kids.find((s) => s.name === 'kernel activity');
  assert.ok(summary && Number(attribute(summary, 'causeway.block.io.duration_ms')) > 0);
  const writes = kids.filter(
    (s) => attribute(s, 'causeway.kind') === 'block.io' && attribute(s, 'causeway.block.op') === 'write',
  );
  assert.ok(writes.length > 0, kids.map((s) => s.name).join(', '));
  assert.match(writes[0]?.name ?? '', /^block write \S+$/);
  for (const w of writes)
    assert.equal(
      attribute(w, 'causeway.thread.tid'),
      truth.pid,
      'a Node span runs on the main thread, whose tid is the pid',
    );
  assert.ok(
    kids.some((s) => attribute(s, 'causeway.kind') === 'sched.blocked'),
    'the fsync blocked the thread',
  );
});

test('a collector that starts after the sidecar receives the kernel spans queued meanwhile, and those made after', async (t) => {
  if (!kernelAvailable(t)) return;
  const jaeger = await startJaeger();
  t.after(() => jaeger.stop());
  const config = join(ROOT, 'otel-config', 'collector.yaml');
  const kernelGrpc = `127.0.0.1:${String(await freePort())}`;
  const env = {
    JAEGER_OTLP_GRPC: jaeger.otlpGrpc,
    OTELCOL_KERNEL_GRPC: kernelGrpc,
    CAUSEWAY_OTLP_GRPC: `127.0.0.1:${String(await freePort())}`,
  };
  const sidecar = await startSidecar(`http://${kernelGrpc}`);
  t.after(() => sidecar.stop());
  // The app sends to the sidecar directly here: the collector is what goes away.
  const request = () =>
    runGpuService(sidecar, 50, {
      ...privateGpu(t),
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${String(sidecar.grpcPort)}`,
    });

  const early = await request(); // the collector is not running yet
  await until('the sidecar to say the collector is down', 30_000, () =>
    /cannot export to the collector/.test(sidecar.log()) ? true : undefined,
  );
  assert.match(await sidecar.metrics(), /^causeway_export_queue_spans [1-9]\d*$/m);

  const collector = await startCollector(config, env);
  t.after(() => collector.stop());
  const late = await request();
  for (const truth of [early, late]) {
    const synced = (tr: OtlpTrace) =>
      spansOf(tr).some((s) => s.parentSpanId === truth.span_id && s.name === 'cudaStreamSynchronize');
    const trace = await getTrace(jaeger.queryUrl, truth.trace_id, { timeoutMs: 30_000, until: synced });
    assert.ok(trace && synced(trace), sidecar.log());
  }
  assert.match(sidecar.log(), /collector at .*: collector reachable again/);
  const metrics = await sidecar.metrics();
  assert.match(metrics, /^causeway_export_collector_up 1$/m);
  assert.doesNotMatch(metrics, /^causeway_export_spans_dropped_total\{.*\} [1-9]/m);
});
