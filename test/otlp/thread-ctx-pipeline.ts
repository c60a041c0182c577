// For the thread-context writers' end-to-end tests (the Python and the Node one), through the
// whole pipeline (test/e2e/pipeline.ts: the collector, the sidecar, Jaeger): the app followed by
// the sidecar, the wait that blocked the loop found in Jaeger under request A's span and not in
// the trace of B started later, and explain_trace asked over MCP.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Explanation } from '../../src/correlate/explanation.js';
import * as A from '../../src/semconv/attributes.js';
import { until, type Sidecar } from '../cli/sidecar.js';
import { attribute, getTrace, spansOf, type Jaeger, type OtlpSpan } from '../e2e/backends.js';
import type { Stop } from './thread-ctx-writer.js';

/**
 * Requests /ready of the app on `port` (its spans make the sidecar follow it) until the sidecar
 * has found where process `pid` publishes its active span, and logged each of `also`.
 */
export async function untilFollowed(sidecar: Sidecar, port: number, pid: number, also: string[] = []): Promise<void> {
  const expected = [`pid ${String(pid)} publishes its active span`, ...also];
  await until(`the sidecar to follow pid ${String(pid)}: ${sidecar.log()}`, 30_000, async () => {
    await (await fetch(`http://127.0.0.1:${String(port)}/ready`)).text();
    const log = sidecar.log();
    return expected.every((line) => log.includes(line)) ? true : undefined;
  });
}

const isKind = (span: OtlpSpan, kind: string) => attribute(span, A.ATTR_CAUSEWAY_KIND) === kind;

/**
 * The `kind` span of A's blocking wait (`isWait` tells it from others of the kind) as Jaeger has
 * it: under A's span, attached exactly; and not in B's trace. Returns it.
 */
export async function assertWaitLandsInA(
  { jaeger, sidecar }: { jaeger: Jaeger; sidecar: Sidecar },
  stops: { a: Stop; b: Stop },
  kind: string,
  isWait: (span: OtlpSpan) => boolean = () => true,
): Promise<OtlpSpan> {
  const { a, b } = stops;
  const waitUnderA = (spans: OtlpSpan[]) =>
    spans.find((s) => s.parentSpanId === a.span_id && isKind(s, kind) && isWait(s));
  const traceA = await getTrace(jaeger.queryUrl, a.trace_id, {
    timeoutMs: 30_000,
    until: (trace) => waitUnderA(spansOf(trace)) !== undefined,
  });
  const spansA = traceA === undefined ? [] : spansOf(traceA);
  const wait = waitUnderA(spansA);
  assert.ok(
    wait,
    `no ${kind} under A's span ${a.span_id} in Jaeger, only ${JSON.stringify(spansA.map((s) => [s.name, s.spanId, s.parentSpanId]))}; sidecar: ${sidecar.log()}`,
  );
  assert.equal(attribute(wait, A.ATTR_CAUSEWAY_ATTACH_SCOPE), 'exact');

  const traceB = await getTrace(jaeger.queryUrl, b.trace_id, {
    until: (trace) => spansOf(trace).some((s) => s.spanId === b.span_id),
  });
  assert.ok(traceB, `B's trace ${b.trace_id} not in Jaeger`);
  assert.deepEqual(
    spansOf(traceB)
      .filter((s) => isKind(s, kind) && isWait(s))
      .map((s) => s.spanId),
    [],
    `A's ${kind} is not in B's trace`,
  );
  return wait;
}

/** explain_trace over an MCP client of the sidecar's (closed after the test), once it can answer for the trace. */
export async function explainer(t: TestContext, sidecar: Sidecar): Promise<(traceId: string) => Promise<Explanation>> {
  const mcp = new Client({ name: 'thread-ctx-test', version: '1' });
  await mcp.connect(new StreamableHTTPClientTransport(new URL(sidecar.mcpUrl)));
  t.after(() => mcp.close());
  return (traceId) =>
    until(`explain_trace of ${traceId}`, 10_000, async () => {
      const result = await mcp.callTool({ name: 'explain_trace', arguments: { trace_id: traceId } });
      return result.isError === true ? undefined : (result.structuredContent as Explanation);
    });
}
