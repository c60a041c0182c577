// Cross-process attribution, with real parts, in the shape of an LLM server: an aiohttp front
// end traced by OpenTelemetry's aiohttp server instrumentation hands each request to an
// untraced engine process, which batches the requests and runs one step per batch (a CUDA graph
// replayed on the simulated GPU, or an fsync). The engine listens on a unix socket, started
// before the sidecar, or is the front end's child behind two multiprocessing queues (pipes).
// Concurrent requests go through the real collector into the real Jaeger: each request's trace
// must hold the engine's wait under its server span, linked and marked shared by the batch, and
// explain_trace must name the engine's wait as the root cause.
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Explanation } from '../../src/correlate/explanation.js';
import * as A from '../../src/semconv/attributes.js';
import { ROOT, SIM_CUDART, kernelAvailable, privateGpu, startWorkload, waitForStderr } from '../bpf/session.js';
import { until } from '../cli/sidecar.js';
import { attribute, getTrace, pythonBin, spansOf, type OtlpSpan } from '../e2e/backends.js';
import { startPipeline } from '../e2e/pipeline.js';
import { onBlockDevice } from './faults.js';

const APPS = join(ROOT, 'test', 'fixtures', 'apps');
const CONCURRENT = 8;

/** What the front end answers: its server span and loop thread, and the engine's batch. */
interface Reply {
  trace_id: string;
  span_id: string;
  pid: number;
  tid: number;
  batch: number;
  batch_size: number;
  engine_pid: number;
  engine_tid: number;
}

interface Served {
  replies: Reply[];
  engine: { pid: number; tid: number; batches: { batch: number; batch_size: number }[] };
  /** The last span linked by connection under the request span (of `kind`, if given), and every linked one. */
  linked: (reply: Reply, kind?: string) => Promise<{ span: OtlpSpan; all: OtlpSpan[] }>;
  explain: (reply: Reply) => Promise<Explanation>;
}

/** How the front end reaches the engine: a unix socket to an engine started first, or queues to its child. */
type Behind = 'socket' | 'queue';

/** The engine, the pipeline, the front end; a first request, then CONCURRENT at once. */
async function serve(
  t: TestContext,
  behind: Behind,
  engineArgs: string[],
  env: Record<string, string>,
): Promise<Served> {
  const socket = join(tmpdir(), `causeway-engine-${String(process.pid)}.sock`);
  const engine =
    behind === 'socket'
      ? startWorkload(pythonBin, [join(APPS, 'python_serving_engine.py'), socket, ...engineArgs], env)
      : undefined;
  if (engine !== undefined) {
    t.after(() => engine.child.kill('SIGKILL'));
    engine.truth.catch(() => undefined); // awaited below unless the test failed before
    await waitForStderr(engine, 'listening');
  }
  const { jaeger, collector, sidecar } = await startPipeline(t);
  const frontend = startWorkload(
    pythonBin,
    [join(APPS, 'python_serving_frontend.py'), ...(engine === undefined ? ['--queue', ...engineArgs] : [socket])],
    { ...env, OTEL_EXPORTER_OTLP_ENDPOINT: `http://${collector.otlpGrpc}` },
  );
  t.after(() => frontend.child.kill('SIGKILL')); // its engine child dies with it
  frontend.truth.catch(() => undefined); // behind a socket it prints no truth: its replies are; behind queues, the engine's
  await waitForStderr(frontend, 'listening on ');
  const port = /listening on (\d+)/.exec(frontend.stderr())?.[1];
  if (engine === undefined) {
    // Its child, started after the sidecar: the engine captures its graph at its first step, once probed.
    const pid = /engine pid (\d+)/.exec(frontend.stderr())?.[1];
    await until(`the sidecar to probe the engine's CUDA library: ${sidecar.log()}`, 30_000, () =>
      sidecar.log().includes(`GPU process ${String(pid)} `) ? true : undefined,
    );
  }
  const generate = async () =>
    (await (await fetch(`http://127.0.0.1:${String(port)}/generate`, { method: 'POST', body: 'hi' })).json()) as Reply;

  const mcp = new Client({ name: 'serving-test', version: '1' });
  await mcp.connect(new StreamableHTTPClientTransport(new URL(sidecar.mcpUrl)));
  t.after(() => mcp.close());
  const explain = async (traceId: string) => {
    const result = await mcp.callTool({ name: 'explain_trace', arguments: { trace_id: traceId } });
    return result.isError === true ? undefined : (result.structuredContent as Explanation);
  };
  // Causeway follows the front end from its first span: one request, until the sidecar holds it.
  const first = await generate();
  await until(`the sidecar to hold trace ${first.trace_id}: ${sidecar.log()}`, 30_000, () => explain(first.trace_id));

  const replies = await Promise.all(Array.from({ length: CONCURRENT }, generate));
  // Behind queues the front end stops its engine, which prints its summary on their shared stdout.
  const stopped = engine ?? frontend;
  stopped.child.kill('SIGTERM');
  const truth = (await stopped.truth) as Served['engine'];
  return {
    replies,
    engine: truth,
    linked: async (reply, kind) => {
      // Its own batch's wait, by connection: the last one (a batch still running when it arrived may be linked too).
      const find = (spans: OtlpSpan[]) =>
        spans.filter((s) => s.parentSpanId === reply.span_id && attribute(s, A.ATTR_CAUSEWAY_LINK) !== undefined);
      const own = (spans: OtlpSpan[]) =>
        find(spans)
          .filter(
            (s) =>
              attribute(s, A.ATTR_CAUSEWAY_LINK) === 'connection' &&
              (kind === undefined || attribute(s, A.ATTR_CAUSEWAY_KIND) === kind),
          )
          .sort((a, b) => Number(BigInt(a.endTimeUnixNano) - BigInt(b.endTimeUnixNano)))
          .at(-1);
      const trace = await getTrace(jaeger.queryUrl, reply.trace_id, {
        timeoutMs: 30_000,
        until: (tr) => own(spansOf(tr)) !== undefined,
      });
      const spans = trace === undefined ? [] : spansOf(trace);
      const span = own(spans);
      assert.ok(
        span,
        `no span linked by connection under ${reply.span_id} in trace ${reply.trace_id}:\n${sidecar.log()}`,
      );
      return { span, all: find(spans) };
    },
    explain: async (reply) => {
      // Kernel spans reached Jaeger, so the sidecar joined the span; the store writes every 250 ms.
      const answer = await until(`explain_trace of ${reply.trace_id}`, 10_000, () => explain(reply.trace_id));
      t.diagnostic(answer.summary);
      return answer;
    },
  };
}

/** A string-array attribute's values; empty when the span has none. */
const strings = (span: OtlpSpan, key: string): string[] => {
  const value = span.attributes?.find((a) => a.key === key)?.value as
    { arrayValue?: { values?: { stringValue?: string }[] } } | undefined;
  return (value?.arrayValue?.values ?? []).map((v) => v.stringValue ?? '');
};

/** The engine really batched: every request was served, and some batch served several. */
function assertBatched({ replies, engine }: Served): void {
  for (const r of replies) {
    assert.equal(r.engine_pid, engine.pid);
    assert.equal(engine.batches[r.batch]?.batch_size, r.batch_size);
  }
  assert.ok(
    replies.some((r) => r.batch_size > 1),
    `no batch served more than one request: ${JSON.stringify(engine.batches)}`,
  );
}

/** Every linked span names the engine's thread; the one linked by connection, the batch it served. */
function assertLinked(
  { span, all }: { span: OtlpSpan; all: OtlpSpan[] },
  reply: Reply,
  engine: Served['engine'],
): void {
  for (const s of all) {
    assert.equal(attribute(s, A.ATTR_CAUSEWAY_REMOTE_PID), engine.pid);
    assert.equal(attribute(s, A.ATTR_CAUSEWAY_REMOTE_TID), engine.tid);
    assert.equal(attribute(s, A.ATTR_CAUSEWAY_REMOTE_COMM), 'engine');
    assert.equal(attribute(s, A.ATTR_CAUSEWAY_THREAD_TID), reply.tid, "under the front end's loop thread");
  }
  assert.equal(attribute(span, A.ATTR_CAUSEWAY_SHARED_COUNT), reply.batch_size);
}

/** Each request's trace holds the engine's connection-linked GPU wait of its batch, and explain_trace names it. */
async function assertGpuWaitServed(t: TestContext, behind: Behind): Promise<void> {
  const served = await serve(t, behind, ['gpu', '--libcudart', SIM_CUDART], privateGpu(t));
  assertBatched(served);
  const { engine } = served;
  for (const reply of served.replies) {
    const linked = await served.linked(reply, 'cuda.sync');
    const { span } = linked;
    assert.match(
      span.name,
      new RegExp(
        `^cudaEventSynchronize in pid ${String(engine.pid)} 'engine'${reply.batch_size > 1 ? ` \\(shared by ${String(reply.batch_size)} requests\\)` : ''}$`,
      ),
    );
    assertLinked(linked, reply, engine);
    assert.equal(strings(span, A.ATTR_CAUSEWAY_CUDA_INFLIGHT_GRAPHS).length, 1, 'the wait names the graph in flight');
    const kernels = strings(span, A.ATTR_CAUSEWAY_CUDA_INFLIGHT_KERNELS);
    assert.ok(kernels.length > 0 && kernels.every((k) => k.startsWith('matmul_big(')), kernels.join(', '));

    const answer = await served.explain(reply);
    assert.equal(answer.root_cause?.kind, 'cuda.sync');
    assert.equal(answer.root_cause.culprit?.pid, engine.pid);
    assert.equal(answer.root_cause.culprit.tid, engine.tid);
    assert.equal(answer.root_cause.culprit.comm, 'engine');
    assert.match(answer.root_cause.culprit.cuda_kernel ?? '', /^matmul_big\(/, 'a kernel of the replayed graph');
    const [request, remote] = answer.root_cause.chain;
    assert.equal(request?.tid, reply.tid);
    assert.equal(remote?.pid, engine.pid);
    assert.ok(remote.link === 'connection' || remote.link === 'waker', `link ${String(remote.link)}`);
  }
}

test("LLM server: each concurrent request's trace holds the engine's graph-replay GPU wait, shared by its batch, and explain_trace names it", async (t) => {
  if (!kernelAvailable(t)) return;
  await assertGpuWaitServed(t, 'socket');
});

test("LLM server with its engine behind multiprocessing queues (pipes): each request's trace holds the engine's GPU wait, linked over the two pipes, shared by its batch", async (t) => {
  if (!kernelAvailable(t)) return;
  await assertGpuWaitServed(t, 'queue');
});

test("LLM server with an engine doing I/O: each request's trace holds the engine's block I/O, and explain_trace names it", async (t) => {
  if (!kernelAvailable(t)) return;
  const served = await serve(t, 'socket', ['io', '--dir', onBlockDevice()], {});
  assertBatched(served);
  const { engine } = served;
  for (const reply of served.replies) {
    assertLinked(await served.linked(reply), reply, engine);
    const answer = await served.explain(reply);
    assert.equal(answer.root_cause?.kind, 'block.io');
    assert.equal(answer.root_cause.culprit?.pid, engine.pid);
    assert.equal(answer.root_cause.culprit.tid, engine.tid);
    assert.ok(['connection', 'waker'].includes(answer.root_cause.chain[1]?.link ?? ''), 'linked to the engine');
  }
});
