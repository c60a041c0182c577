// The Python thread-context writer (src/otlp/python/causeway_thread_ctx.py), read from outside
// the process the way Causeway's probes read it (thread-ctx-writer.ts): the thread pointer plus
// the TP offset that the library's GOT holds for otel_thread_ctx_v1 (initial-exec TLS), then the
// record it points to, from /proc/PID/mem. The app stops each thread where the test reads (blocked in a read, as a
// thread is in a kernel event) and says which span must be published there. Then with the real
// probes (the loader's reader of the same variable): the GPU sync that blocks the loop is
// stamped with the span of the request that waits in it, and through the whole pipeline (the
// collector, the sidecar, Jaeger, explain_trace over MCP) lands in that request's trace only.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  ROOT,
  SIM_CUDART,
  kernelAvailable,
  privateGpu,
  settle,
  startCapture,
  type CapturedEvent,
} from '../bpf/session.js';
import { pythonBin } from '../e2e/backends.js';
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

const APP = join(ROOT, 'test', 'fixtures', 'apps', 'python_thread_ctx_service.py');
const LIBRARY = join(ROOT, 'src', 'otlp', 'python', 'libcauseway_thread_ctx.so');

/** The Python app, stopped where the test reads its records. */
const startApp = (args: string[], env: NodeJS.ProcessEnv = process.env) =>
  startWriterApp(pythonBin, [APP, ...args], env);
const readPublished = (pid: number, pthread: string) => readRecord(pid, LIBRARY, pthread);

test('on an asyncio loop the record holds the span of the request that blocks it, not the one started later', async (t) => {
  assert.equal(process.arch, 'x64', 'the thread pointer is pthread_self on x86-64 glibc');
  const app = startApp(['aiohttp']);
  t.after(app.kill);
  // A blocks the loop while B, started after it, awaits a timer.
  await assertLoopPublishesEachRequest(app, readPublished);
});

test('each thread of a pool publishes the span of its own task, and none once it ended', async (t) => {
  const workers = 4;
  const app = startApp(['pool', String(workers)]);
  t.after(app.kill);
  const stops: Stop[] = [];
  for (let i = 0; i < workers; i++) stops.push((await app.next()) as unknown as Stop);
  assert.equal(new Set(stops.map((s) => s.tid)).size, workers, 'one thread per worker');
  assert.equal(new Set(stops.map((s) => s.span_id)).size, workers, 'one span per worker');
  for (const stop of stops) assertPublishes(await readPublished(app.pid, stop.pthread), stop);
  app.release();
  // Their spans ended: each thread has no context, and no record is held for them.
  for (let i = 0; i < workers; i++) {
    const after = (await app.next()) as unknown as Stop;
    assert.match(after.stop, /^after-/);
    assert.equal(await readPublished(app.pid, after.pthread), null, after.stop);
  }
  app.release();
  assert.deepEqual(await app.next(), { done: true, records: 0 });
  assert.equal(await app.exited, 0);
});

test("with the writer, a loop's callbacks run as with asyncio's own Handle._run: exceptions reach the loop's handler, SystemExit escapes", async (t) => {
  const app = startApp(['callbacks']);
  t.after(app.kill);
  const seen = await app.next();
  assert.equal(seen.hook, 'Hook', 'the writer runs the handles');
  // The same callbacks on the same loop code, without the writer and with it.
  assert.deepEqual(seen.writer, seen.asyncio);
  assert.deepEqual(seen.writer, {
    handled: {
      message: (seen.asyncio as { handled: { message: string } }).handled.message,
      exception: "ValueError('a')",
      handle: true,
      raised_in: 'boom',
    },
    seen: ['b', 'in its context'],
    escaped: 'SystemExit 3',
  });
  assert.match(
    (seen.writer as { handled: { message: string } }).handled.message,
    /^Exception in callback .*boom\('a'\)/,
  );
  assert.equal(await app.exited, 0, app.stderr());
});

test('without its library the writer warns once and the app runs on', async (t) => {
  const app = startApp(['pool', '2'], {
    ...process.env,
    CAUSEWAY_THREAD_CTX_LIB: '/nonexistent/libcauseway_thread_ctx.so',
  });
  t.after(app.kill);
  for (const phase of [/^worker-/, /^after-/]) {
    for (let i = 0; i < 2; i++) assert.match(((await app.next()) as unknown as Stop).stop, phase);
    app.release();
  }
  assert.deepEqual(await app.next(), { done: true, records: null });
  assert.equal(await app.exited, 0);
  const warnings = app.stderr().match(/no thread contexts are published/g) ?? [];
  assert.equal(warnings.length, 1, app.stderr());
  assert.match(app.stderr(), /\/nonexistent\/libcauseway_thread_ctx\.so/);
});

test('with real probes, the GPU sync blocking the loop is stamped with the request that waits in it, not the later one', async (t) => {
  if (!kernelAvailable(t)) return;
  const capture = await startCapture(t, ['--comm', 'python', '--min-duration-us', '1000']);
  const app = startApp(['aiohttp', SIM_CUDART, '100'], { ...process.env, ...privateGpu(t) });
  t.after(app.kill);
  const { port } = (await app.next()) as { port: number };
  // The probes stamp events once the loader has found where the app publishes (it reads the
  // library's GOT when told the library was mapped): a busy loader may do it after the app printed
  // its port.
  const publishes = `pid ${String(app.pid)} publishes its active span`;
  await capture.until(() => capture.stderr.includes(publishes), 30_000, publishes);
  const { answers } = await requestsAandB(app, port);
  const stopA = (await app.next()) as unknown as Stop;
  const stopB = (await app.next()) as unknown as Stop;
  assert.deepEqual(await answers, ['a', 'b']);
  await settle();
  await capture.stop();

  assert.match(
    capture.stderr,
    new RegExp(`pid ${String(app.pid)} publishes its active span \\(initial-exec in .*libcauseway_thread_ctx\\.so`),
  );
  const syncs = capture.of('cuda.sync', (e) => e.pid === app.pid);
  // Only A syncs (B, started later, awaits a timer meanwhile): the stamp is A's span.
  assert.deepEqual(
    syncs.map((e) => [e.tid, (e as CapturedEvent & { span_context?: unknown }).span_context]),
    [[stopA.tid, { trace_id: stopA.trace_id, span_id: stopA.span_id }]],
  );
  assert.equal(stopB.tid, stopA.tid, 'both requests ran on the loop thread');
});

test("end to end: A's GPU sync lands in A's trace, not in that of B started later; explain_trace answers it on A, and on B names A as holding its thread", async (t) => {
  if (!kernelAvailable(t)) return;
  const { jaeger, collector, sidecar } = await startPipeline(t);
  const app = startApp(['aiohttp', SIM_CUDART, '200'], {
    ...process.env,
    ...privateGpu(t),
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://${collector.otlpGrpc}`,
    OTEL_BSP_SCHEDULE_DELAY: '100',
  });
  t.after(app.kill);
  const { port } = (await app.next()) as { port: number };
  // Causeway follows the app from its spans: requests until its CUDA library is probed and
  // its thread-context variable found.
  await untilFollowed(sidecar, port, app.pid, [`GPU process ${String(app.pid)} `]);
  const { answers } = await requestsAandB(app, port);
  const stopA = (await app.next()) as unknown as Stop;
  const stopB = (await app.next()) as unknown as Stop;
  assert.deepEqual(await answers, ['a', 'b']);
  await assertWaitLandsInA({ jaeger, sidecar }, { a: stopA, b: stopB }, 'cuda.sync');

  // explain_trace follows the critical path through what its thread did: on A's, its own sync;
  // on B's, the same sync, which the stamp says was A's: A held the loop B runs on.
  const explain = await explainer(t, sidecar);
  const answerA = await explain(stopA.trace_id);
  assert.equal(answerA.root_cause?.kind, 'cuda.sync', answerA.summary);
  assert.equal(answerA.root_cause.span_id, stopA.span_id, "on A's span");
  assert.equal(answerA.root_cause.attach_scope, 'exact', answerA.summary);
  assert.equal(answerA.root_cause.culprit?.trace_id, undefined, 'the sync was A\u2019s own');

  const answerB = await explain(stopB.trace_id);
  const causeB = answerB.root_cause;
  assert.equal(causeB?.kind, 'cuda.sync', answerB.summary);
  assert.deepEqual(
    [causeB.culprit?.trace_id, causeB.culprit?.span_id, causeB.culprit?.tid],
    [stopA.trace_id, stopA.span_id, stopA.tid],
    `A held B's thread: ${answerB.summary}`,
  );
  assert.equal(causeB.chain[0]?.link, 'same_thread');
  assert.equal(causeB.attach_scope, 'exact');
  assert.match(
    causeB.evidence[0] ?? '',
    new RegExp(`by request ${stopA.trace_id} .*: this request did not make the call`),
  );
  assert.match(answerB.summary, new RegExp(`caused by another request, trace ${stopA.trace_id}`));
});
