// The Node thread-context writer (src/otlp/node: ThreadContextManager and its addon), on an app
// traced by @opentelemetry/sdk-node with its HTTP instrumentation
// (test/fixtures/apps/node_thread_ctx_service.mjs). Its records read from outside the process
// the way Causeway's probes read them (thread-ctx-writer.ts), at stops where the app says which
// span must be published (blocked in a read or a futex wait, as a thread is in a kernel event):
// on the event loop with two requests open, in contexts nested one in another, and on a worker
// thread beside the main one. Then with the real probes: the futex wait that blocks the loop is
// stamped with the span of the request that waits in it, not of the request started later; a
// worker's with the worker's span. And through the whole pipeline (the collector, the sidecar,
// Jaeger, explain_trace over MCP): that wait lands in A's trace only.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import * as A from '../../src/semconv/attributes.js';
import { ROOT, durationMs, kernelAvailable, settle, startCapture } from '../bpf/session.js';
import { attribute, type OtlpSpan } from '../e2e/backends.js';
import { startPipeline } from '../e2e/pipeline.js';
import { assertWaitLandsInA, explainer, untilFollowed } from './thread-ctx-pipeline.js';
import {
  assertLoopPublishesEachRequest,
  assertPublishes,
  readRecord,
  requestsAandB,
  startWriterApp,
  type Stop,
} from './thread-ctx-writer.js';

const APP = join(ROOT, 'test', 'fixtures', 'apps', 'node_thread_ctx_service.mjs');
const ADDON = join(ROOT, 'src', 'otlp', 'node', 'causeway_thread_ctx.node');
/** How long the app's futex waits last with the real probes: far above anything else the loop waits in a futex. */
const BLOCK_MS = 200;

const spanMs = (span: OtlpSpan) => Number(BigInt(span.endTimeUnixNano) - BigInt(span.startTimeUnixNano)) / 1e6;

const startApp = (args: string[], env: NodeJS.ProcessEnv = process.env) =>
  startWriterApp(process.execPath, [APP, ...args], env);
const readPublished = (pid: number, pthread: string) => readRecord(pid, ADDON, pthread);

test('on the Node event loop the record holds the span of the request that blocks it, not the one started later', async (t) => {
  assert.equal(process.arch, 'x64', 'the thread pointer is pthread_self on x86-64 glibc');
  const app = startApp(['http']);
  t.after(app.kill);
  // A blocks the loop after an await while B, started after it, awaits timers.
  const stopA = await assertLoopPublishesEachRequest(app, readPublished);
  assert.match(stopA.span_id, /^[0-9a-f]{16}$/, 'the HTTP instrumentation made a span for A');
});

test('a worker thread publishes its own span beside the main thread, and none once it ended', async (t) => {
  const app = startApp(['worker']);
  t.after(app.kill);
  const stops: Stop[] = [];
  for (let i = 0; i < 2; i++) stops.push((await app.next()) as unknown as Stop);
  const byName = new Map(stops.map((s) => [s.stop, s]));
  const [main, worker] = [byName.get('main'), byName.get('worker')];
  assert.ok(main && worker, JSON.stringify(stops));
  assert.notEqual(worker.tid, main.tid, 'the worker runs on a thread of its own');
  assert.notEqual(worker.span_id, main.span_id);
  // Both threads are stopped at once, each in its own span.
  assertPublishes(await readPublished(app.pid, main.pthread), main);
  assertPublishes(await readPublished(app.pid, worker.pthread), worker);
  app.release();

  const after = (await app.next()) as unknown as Stop;
  assert.deepEqual([after.stop, after.tid, after.span_id], ['worker-after', worker.tid, '']);
  assert.equal(await readPublished(app.pid, after.pthread), null, 'no span once the worker ended it');
  app.release();
  assert.deepEqual(await app.next(), { done: true });
  assert.equal(await app.exited, 0);
});

test('nested contexts: each publishes its span where it is active, and the one around it is back once it returned', async (t) => {
  const app = startApp(['nested']);
  t.after(app.kill);
  const names = ['outer', 'inner', 'outer-inside-inner', 'inner-again', 'outer-again'];
  const stops: Stop[] = [];
  for (const name of names) {
    const stop = (await app.next()) as unknown as Stop;
    assert.equal(stop.stop, name);
    assertPublishes(await readPublished(app.pid, stop.pthread), stop);
    stops.push(stop);
    app.release();
  }
  const [outer, inner, outerInside, innerAgain, outerAgain] = stops as [Stop, Stop, Stop, Stop, Stop];
  assert.notEqual(inner.span_id, outer.span_id);
  assert.deepEqual(
    [outerInside.span_id, innerAgain.span_id, outerAgain.span_id],
    [outer.span_id, inner.span_id, outer.span_id],
  );
  const after = (await app.next()) as unknown as Stop;
  assert.deepEqual([after.stop, after.span_id], ['after', '']);
  assert.equal(await readPublished(app.pid, after.pthread), null, 'no span once "outer" ended');
  app.release();
  assert.deepEqual(await app.next(), { done: true });
  assert.equal(await app.exited, 0);
});

test('without its addon the writer warns once and the app runs on, traced', async (t) => {
  const app = startApp(['http'], {
    ...process.env,
    CAUSEWAY_THREAD_CTX_ADDON: '/nonexistent/causeway_thread_ctx.node',
  });
  t.after(app.kill);
  const { port } = (await app.next()) as { port: number };
  const { answers } = await requestsAandB(app, port);
  for (const name of ['a', 'b']) {
    const stop = (await app.next()) as unknown as Stop;
    assert.equal(stop.stop, name);
    assert.match(stop.span_id, /^[0-9a-f]{16}$/, 'the context manager still carries the spans');
    app.release();
  }
  assert.deepEqual(await answers, ['a', 'b']);
  const warnings = app.stderr().match(/no thread contexts are published/g) ?? [];
  assert.equal(warnings.length, 1, app.stderr());
  assert.match(app.stderr(), /\/nonexistent\/causeway_thread_ctx\.node/);
});

test('with real probes, the futex wait blocking the loop is stamped with the request that waits in it, not the later one', async (t) => {
  if (!kernelAvailable(t)) return;
  const app = startApp(['http', String(BLOCK_MS)]);
  t.after(app.kill);
  const { port } = (await app.next()) as { port: number };
  const capture = await startCapture(t, ['--pid', String(app.pid), '--min-duration-us', '1000']);
  const { answers } = await requestsAandB(app, port);
  const stopA = (await app.next()) as unknown as Stop;
  const stopB = (await app.next()) as unknown as Stop;
  assert.deepEqual(await answers, ['a', 'b']);
  await settle();
  await capture.stop();

  assert.match(
    capture.stderr,
    new RegExp(`pid ${String(app.pid)} publishes its active span \\(initial-exec in .*causeway_thread_ctx\\.node`),
  );
  // Only A blocks (B, started later, awaits timers meanwhile): the stamp is A's span.
  const blocked = capture.of('futex.wait', (e) => e.tid === stopA.tid && durationMs(e) >= BLOCK_MS / 2);
  assert.deepEqual(
    blocked.map((e) => e.span_context),
    [{ trace_id: stopA.trace_id, span_id: stopA.span_id }],
  );
  assert.equal(stopB.tid, stopA.tid, 'both requests ran on the loop thread');
});

test("with real probes, a worker thread's futex wait is stamped with the worker's span", async (t) => {
  if (!kernelAvailable(t)) return;
  // The probes follow the app from its start: the addon is found as the main thread maps it.
  const capture = await startCapture(t, ['--comm', 'node', '--min-duration-us', '1000']);
  const app = startApp(['worker', String(BLOCK_MS)]);
  t.after(app.kill);
  // The loader reads the addon's slot once ld.so relocated it: the worker starts after that.
  await capture.until(
    () => capture.stderr.includes(`pid ${String(app.pid)} publishes its active span`),
    15_000,
    'the probes to find the addon',
  );
  app.release();
  const worker = (await app.next()) as unknown as Stop;
  assert.equal(worker.stop, 'worker');
  assert.deepEqual(await app.next(), { done: true });
  await settle();
  await capture.stop();

  const blocked = capture.of('futex.wait', (e) => e.tid === worker.tid && durationMs(e) >= BLOCK_MS / 2);
  // The capture's log says which offset the loader found for the thread context.
  assert.deepEqual(
    blocked.map((e) => e.span_context),
    [{ trace_id: worker.trace_id, span_id: worker.span_id }],
    capture.stderr,
  );
});

test("end to end: A's futex wait lands in A's trace, attached exactly, not in that of B started later; explain_trace on A names it, on A's span, and the thread that held the lock", async (t) => {
  if (!kernelAvailable(t)) return;
  const { jaeger, collector, sidecar } = await startPipeline(t);
  const app = startApp(['http', String(BLOCK_MS)], {
    ...process.env,
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://${collector.otlpGrpc}`,
  });
  t.after(app.kill);
  const { port, holder } = (await app.next()) as { port: number; holder: number };
  // Causeway follows the app from its spans: requests until its thread-context variable is found.
  await untilFollowed(sidecar, port, app.pid);
  const { answers } = await requestsAandB(app, port);
  const stopA = (await app.next()) as unknown as Stop;
  const stopB = (await app.next()) as unknown as Stop;
  assert.deepEqual(await answers, ['a', 'b']);
  assert.equal(stopB.tid, stopA.tid, 'both requests ran on the loop thread');

  // A's wait, told from the loop's other futex waits (short ones, of its own or other threads).
  const isAsWait = (span: OtlpSpan) =>
    attribute(span, A.ATTR_CAUSEWAY_THREAD_TID) === stopA.tid && spanMs(span) >= BLOCK_MS / 2;
  await assertWaitLandsInA({ jaeger, sidecar }, { a: stopA, b: stopB }, 'futex.wait', isAsWait);

  const answerA = await (await explainer(t, sidecar))(stopA.trace_id);
  assert.equal(answerA.root_cause?.kind, 'futex.wait', answerA.summary);
  assert.equal(answerA.root_cause.span_id, stopA.span_id, "on A's span");
  assert.equal(answerA.root_cause.attach_scope, 'exact', answerA.summary);
  assert.deepEqual(
    [answerA.root_cause.culprit?.pid, answerA.root_cause.culprit?.tid],
    [app.pid, holder],
    `the worker holding the lock: ${answerA.summary}`,
  );
});
