// The kernel spans made for one app span: what Jaeger or Tempo show under it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { Attachment } from '../../src/correlate/correlator.js';
import { KernelSpanBuilder, MAX_CHILD_SPANS } from '../../src/export/spans.js';
import type { KernelEvent } from '../../src/kernel/events.js';
import * as A from '../../src/semconv/attributes.js';
import { LOADER_PID, runqueue } from '../kernel/records.js';
import { shaped } from '../kernel/shaped.js';
import { MS, T0, appSpan, holder, kernelEvent } from '../store/traces.js';

const app = { pid: 10, tid: 11 };
const at = (ms: number) => T0 + BigInt(ms) * MS;
const request = appSpan({ trace: 7, span: 70, start: at(0), end: at(1000), ...app });
const nanos = (t: [number, number]) => BigInt(t[0]) * 1_000_000_000n + BigInt(t[1]);

function launch(startMs: number, durationUs: number): KernelEvent {
  const start = at(startMs);
  return kernelEvent('cuda.launch', app, start, start + BigInt(durationUs) * 1000n, {
    [A.ATTR_CAUSEWAY_CUDA_API]: 'cudaLaunchKernel',
    [A.ATTR_CAUSEWAY_CUDA_KERNEL]: `kernel_${String(durationUs)}`,
  });
}

const EVENTS: KernelEvent[] = [
  kernelEvent('futex.wait', app, at(10), at(110)),
  kernelEvent('cuda.sync', app, at(200), at(250), { [A.ATTR_CAUSEWAY_CUDA_API]: 'cudaStreamSynchronize' }),
  kernelEvent('cuda.sync', app, at(260), at(290), {
    [A.ATTR_CAUSEWAY_CUDA_API]: 'cudaEventQuery',
    [A.ATTR_CAUSEWAY_CUDA_SYNC_POLLING]: true,
  }),
  kernelEvent('block.io', app, at(300), at(320), {
    [A.ATTR_CAUSEWAY_BLOCK_OP]: 'write',
    [A.ATTR_CAUSEWAY_BLOCK_DEVICE]: 'vda',
  }),
  kernelEvent('sched.runqueue', app, at(400), at(405), {
    ...holder({ pid: 900, tid: 900, comm: 'node' }),
    [A.ATTR_CAUSEWAY_SCHED_HOLDER_CAUSEWAY]: true,
  }),
  kernelEvent('sched.runqueue', app, at(500), at(503), holder({ pid: 20, tid: 21, comm: 'batch' })),
  ...[1, 2, 3, 4, 5, 6, 7].map((us) => launch(600 + us, us * 100)),
  kernelEvent('tcp.retransmit', app, at(700), at(700)),
];

const build = (events: KernelEvent[], place: Attachment['place'] = { hostPid: app.pid, hostTid: app.tid }) =>
  new KernelSpanBuilder().build({ span: request.span, place, events });

test('each interval is a child span of the app span, named for a person, longest first', () => {
  const [, ...children] = build(EVENTS);
  assert.deepEqual(
    children.map((s) => s.name),
    [
      'futex wait',
      'cudaStreamSynchronize',
      'cudaEventQuery (polling)',
      'block write vda',
      'run queue wait (CPU held by Causeway)',
      'run queue wait',
    ],
  );
  for (const child of children) {
    assert.equal(child.spanContext().traceId, request.span.traceId);
    assert.equal(child.parentSpanContext?.spanId, request.span.spanId);
    assert.match(child.spanContext().spanId, /^[0-9a-f]{16}$/);
    assert.equal(child.attributes[A.ATTR_CAUSEWAY_ATTACH_SCOPE], 'thread');
    assert.equal(child.resource.attributes['service.name'], 'api', 'kernel spans show under the app service');
  }
  assert.equal(new Set(children.map((s) => s.spanContext().spanId)).size, children.length);
  const futex = children[0];
  assert.equal(nanos(futex?.startTime ?? [0, 0]), at(10));
  assert.equal(nanos(futex?.endTime ?? [0, 0]), at(110));
  assert.equal(futex?.attributes[A.ATTR_CAUSEWAY_KIND], 'futex.wait');
});

test("the 'kernel activity' summary gives the time per kind and aggregates the launches", () => {
  const [summary] = build(EVENTS);
  assert.ok(summary);
  assert.equal(summary.name, 'kernel activity');
  assert.equal(summary.parentSpanContext?.spanId, request.span.spanId);
  assert.equal(summary.spanContext().traceId, request.span.traceId);
  assert.equal(nanos(summary.startTime), request.span.startUnixNano);
  assert.equal(nanos(summary.endTime), request.span.endUnixNano);
  const a = summary.attributes;
  assert.equal(a['causeway.futex.wait.duration_ms'], 100);
  assert.equal(a['causeway.cuda.sync.duration_ms'], 80, 'blocking and polling waits alike');
  assert.equal(a['causeway.block.io.duration_ms'], 20);
  assert.equal(a['causeway.sched.runqueue.duration_ms'], 8);
  assert.equal(a['causeway.cuda.launch.duration_ms'], 2.8, 'launches: total of the seven');
  assert.equal(a[A.ATTR_CAUSEWAY_CUDA_LAUNCH_COUNT], 7);
  assert.equal(a['causeway.tcp.retransmit.duration_ms'], undefined, 'a point has no duration');
  const launches = summary.events.filter((e) => e.name === 'cuda.launch');
  assert.deepEqual(
    launches.map((e) => e.attributes?.[A.ATTR_CAUSEWAY_CUDA_KERNEL]),
    ['kernel_700', 'kernel_600', 'kernel_500', 'kernel_400', 'kernel_300'],
    'the slowest five, slowest first',
  );
  assert.equal(launches[0]?.attributes?.[A.ATTR_CAUSEWAY_DURATION_MS], 0.7);
  assert.equal(summary.events.filter((e) => e.name === 'tcp.retransmit').length, 1);
});

test('a launch that blocked on a full launch queue is a span of its own, and still counts among the launches', () => {
  const blocked = kernelEvent('cuda.launch', app, at(600), at(640), {
    [A.ATTR_CAUSEWAY_CUDA_API]: 'cudaLaunchKernel',
    [A.ATTR_CAUSEWAY_CUDA_LAUNCH_BLOCKED]: true,
    [A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT]: 1024,
  });
  const [summary, ...children] = build([launch(590, 5), blocked]);
  assert.deepEqual(
    children.map((c) => [c.name, c.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT]]),
    [['cudaLaunchKernel (blocked: launch queue full)', 1024]],
  );
  assert.equal(summary?.attributes[A.ATTR_CAUSEWAY_CUDA_LAUNCH_COUNT], 2);
  assert.equal(summary.attributes['causeway.cuda.launch.duration_ms'], 40.005);
});

test('without the thread, kernel spans say they are the whole process', () => {
  const spans = build(EVENTS.slice(0, 1), { hostPid: app.pid });
  assert.deepEqual(
    spans.map((s: ReadableSpan) => s.attributes[A.ATTR_CAUSEWAY_ATTACH_SCOPE]),
    ['process', 'process'],
  );
});

test("events read after their span was joined (another thread's, still going then) are its child spans, without a second summary", () => {
  const late = new KernelSpanBuilder().build({
    span: request.span,
    place: { hostPid: app.pid },
    events: EVENTS.slice(0, 2),
    late: true,
  });
  assert.deepEqual(
    late.map((s) => [s.name, s.parentSpanContext?.spanId]),
    [
      ['futex wait', request.span.spanId],
      ['cudaStreamSynchronize', request.span.spanId],
    ],
  );
});

test('child spans are bounded to the longest intervals; the summary counts them all', () => {
  const many = Array.from({ length: MAX_CHILD_SPANS + 10 }, (_, i) =>
    kernelEvent('futex.wait', app, at(i), at(i) + BigInt(i + 1) * 1000n),
  );
  const [summary, ...children] = build(many);
  assert.equal(children.length, MAX_CHILD_SPANS);
  assert.equal(nanos(children.at(-1)?.duration ?? [0, 0]), 11_000n, 'the ten shortest are left out');
  const totalUs = ((MAX_CHILD_SPANS + 10) * (MAX_CHILD_SPANS + 11)) / 2;
  assert.equal(summary?.attributes['causeway.futex.wait.duration_ms'], totalUs / 1000);
});

test("another process's wait linked to the request is a child span saying whose it was and how many requests it served; messages are no span", () => {
  const linked = kernelEvent('cuda.sync', app, at(100), at(300), {
    [A.ATTR_CAUSEWAY_CUDA_API]: 'cudaEventSynchronize',
    [A.ATTR_CAUSEWAY_LINK]: 'connection',
    [A.ATTR_CAUSEWAY_REMOTE_PID]: 4242,
    [A.ATTR_CAUSEWAY_REMOTE_TID]: 4243,
    [A.ATTR_CAUSEWAY_REMOTE_COMM]: 'engine',
    [A.ATTR_CAUSEWAY_SHARED_COUNT]: 8,
  });
  const message = kernelEvent('ipc.message', app, at(90), at(90), { [A.ATTR_CAUSEWAY_IPC_DIRECTION]: 'send' });
  const [summary, ...children] = build([linked, message]);
  assert.deepEqual(
    children.map((s) => s.name),
    ["cudaEventSynchronize in pid 4242 'engine' (shared by 8 requests)"],
  );
  const [child] = children;
  assert.equal(child?.attributes[A.ATTR_CAUSEWAY_LINK], 'connection');
  assert.equal(child.attributes[A.ATTR_CAUSEWAY_SHARED_COUNT], 8);
  assert.equal(child.attributes[A.ATTR_CAUSEWAY_THREAD_TID], app.tid);
  assert.deepEqual(summary?.events, []);
});

test("a run-queue wait's span carries every task that held the CPU with its on-CPU time, what the history saw, and Causeway's share", async () => {
  const hog = { pid: 50, tid: 51, comm: 'hog' };
  const loader = { pid: LOADER_PID, tid: LOADER_PID, comm: 'causeway-loader' };
  const events = await shaped(
    [
      runqueue({
        ...app,
        cpu: 2,
        startNs: 400n * MS,
        endNs: 412n * MS,
        holders: [
          { ...hog, oncpuNs: 6n * MS },
          { ...loader, oncpuNs: 2n * MS },
          { pid: 70, tid: 72, comm: 'spin', oncpuNs: 1_500_000n },
        ],
        seenNs: 9_500_000n,
      }),
      runqueue({
        ...app,
        startNs: 500n * MS,
        endNs: 503n * MS,
        holders: [
          { ...loader, oncpuNs: 2n * MS },
          { ...hog, oncpuNs: 1n * MS },
        ],
      }),
    ],
    { self: [LOADER_PID], epochNs: T0 },
  );
  const [, behindHog, behindCauseway] = build(events);
  assert.equal(behindHog?.name, 'run queue wait');
  assert.equal(nanos(behindHog.duration), 12n * MS);
  const a = behindHog.attributes;
  assert.deepEqual(
    [a[A.ATTR_CAUSEWAY_SCHED_HOLDER_PID], a[A.ATTR_CAUSEWAY_SCHED_HOLDER_TID], a[A.ATTR_CAUSEWAY_SCHED_HOLDER_COMM]],
    [50, 51, 'hog'],
    'the task that held the CPU longest',
  );
  assert.deepEqual(
    [
      a[A.ATTR_CAUSEWAY_SCHED_HOLDERS_PID],
      a[A.ATTR_CAUSEWAY_SCHED_HOLDERS_TID],
      a[A.ATTR_CAUSEWAY_SCHED_HOLDERS_COMM],
      a[A.ATTR_CAUSEWAY_SCHED_HOLDERS_ONCPU_MS],
    ],
    [
      [50, 70],
      [51, 72],
      ['hog', 'spin'],
      [6, 1.5],
    ],
    'every other task that held it, most first, with its time within the wait',
  );
  assert.equal(a[A.ATTR_CAUSEWAY_SCHED_HOLDERS_CAUSEWAY_MS], 2);
  assert.equal(a[A.ATTR_CAUSEWAY_SCHED_HOLDERS_SEEN_MS], 9.5, 'so its first 2.5 ms were not seen');
  assert.equal(a[A.ATTR_CAUSEWAY_SCHED_CPU], 2);
  assert.equal(behindCauseway?.name, 'run queue wait (CPU held by Causeway)');
  assert.equal(behindCauseway.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDER_CAUSEWAY], true);
  assert.deepEqual(behindCauseway.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_COMM], ['hog']);
  assert.equal(behindCauseway.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_CAUSEWAY_MS], 2);
});

test('a span some of whose kernel events were shed says so on its summary', () => {
  const builder = new KernelSpanBuilder();
  const place = { hostPid: app.pid, hostTid: app.tid };
  const [summary] = builder.build({ span: request.span, place, events: EVENTS.slice(0, 1), shed: true });
  assert.equal(summary?.name, 'kernel activity');
  assert.equal(summary.attributes[A.ATTR_CAUSEWAY_ATTACH_SHED], true);
  const [whole] = builder.build({ span: request.span, place, events: EVENTS });
  assert.equal(whole?.attributes[A.ATTR_CAUSEWAY_ATTACH_SHED], undefined, 'nothing shed: no mark');
});

test("each kernel span says its own event's attach scope; the summary the weakest of them", () => {
  const [exact, ambiguous] = EVENTS as [KernelEvent, KernelEvent];
  const spans = new KernelSpanBuilder().build({
    span: request.span,
    place: { hostPid: app.pid, hostTid: app.tid },
    events: [exact, ambiguous],
    scopes: new Map([
      [exact, A.CAUSEWAY_ATTACH_SCOPE_VALUE_EXACT],
      [ambiguous, A.CAUSEWAY_ATTACH_SCOPE_VALUE_AMBIGUOUS],
    ]),
  });
  const [summary, ...children] = spans;
  assert.equal(summary?.attributes[A.ATTR_CAUSEWAY_ATTACH_SCOPE], 'ambiguous');
  assert.deepEqual(
    children.map((s) => [s.name, s.attributes[A.ATTR_CAUSEWAY_ATTACH_SCOPE]]),
    [
      ['futex wait', 'exact'],
      ['cudaStreamSynchronize', 'ambiguous'],
    ],
  );
});

test('kernel span ids stay distinct, non-zero hex over more spans than one random draw gives', () => {
  const builder = new KernelSpanBuilder();
  const events = Array.from({ length: 100 }, (_, i) => kernelEvent('futex.wait', app, at(i * 5), at(i * 5 + 2)));
  const spans = Array.from({ length: 30 }, () =>
    builder.build({ span: request.span, place: { hostPid: app.pid, hostTid: app.tid }, events }),
  ).flat();
  const ids = spans.map((s) => s.spanContext().spanId);
  assert.equal(ids.length, 30 * 101);
  for (const id of ids) assert.match(id, /^(?!0{16})[0-9a-f]{16}$/);
  assert.equal(new Set(ids).size, ids.length);
});

test("kernel spans carry their own app span's resource, whether spans share its object or only its content", () => {
  const builder = new KernelSpanBuilder();
  const events = [kernelEvent('futex.wait', app, at(10), at(110))];
  // Each call its own resource object.
  const of = (service: string) =>
    builder.build({
      span: { ...request.span, resource: { 'service.name': service, 'process.pid': app.pid } },
      place: { hostPid: app.pid, hostTid: app.tid },
      events,
    });
  const first = of('api');
  const other = of('batch');
  const again = of('api');
  for (const [spans, service] of [
    [first, 'api'],
    [other, 'batch'],
    [again, 'api'],
  ] as const)
    for (const span of spans) assert.equal(span.resource.attributes['service.name'], service);
  assert.equal(again[0]?.resource, first[0]?.resource, 'equal resources are one Resource');
  const shared = { 'service.name': 'api', 'process.pid': app.pid };
  const sameObject = { ...request.span, resource: shared };
  const a = builder.build({ span: sameObject, place: { hostPid: app.pid }, events });
  const b = builder.build({ span: { ...sameObject, spanId: '00000000000000aa' }, place: { hostPid: app.pid }, events });
  assert.equal(a[0]?.resource, b[0]?.resource);
  assert.equal(a[0]?.resource.attributes['process.pid'], app.pid);
});

test("summed waits add their total to the 'kernel activity' time of the kind they sum, are span events there, and are no child spans", () => {
  const summed = (kind: A.CausewayKindValue, startMs: number, endMs: number, attributes: Record<string, number>) =>
    kernelEvent(kind, app, at(startMs), at(endMs), attributes);
  const [summary, ...children] = build([
    kernelEvent('futex.wait', app, at(10), at(110)),
    summed('futex.waits', 120, 130, {
      [A.ATTR_CAUSEWAY_SUMMARY_COUNT]: 40,
      [A.ATTR_CAUSEWAY_FUTEX_WAIT_MS]: 2.5,
      [A.ATTR_CAUSEWAY_FUTEX_MAX_WAIT_MS]: 0.09,
    }),
    summed('sched.blocked_waits', 140, 150, {
      [A.ATTR_CAUSEWAY_SUMMARY_COUNT]: 12,
      [A.ATTR_CAUSEWAY_SCHED_WAIT_MS]: 1.5,
      [A.ATTR_CAUSEWAY_SCHED_MAX_WAIT_MS]: 0.08,
    }),
    summed('sched.runqueues', 160, 170, {
      [A.ATTR_CAUSEWAY_SUMMARY_COUNT]: 5,
      [A.ATTR_CAUSEWAY_SCHED_WAIT_MS]: 0.25,
      [A.ATTR_CAUSEWAY_SCHED_MAX_WAIT_MS]: 0.1,
    }),
  ]);
  assert.deepEqual(
    children.map((c) => c.name),
    ['futex wait'],
  );
  const a = summary?.attributes ?? {};
  assert.equal(a['causeway.futex.wait.duration_ms'], 102.5, 'the whole wait and the summed ones');
  assert.equal(a['causeway.sched.blocked.duration_ms'], 1.5, 'summed only: the window is not the time');
  assert.equal(a['causeway.sched.runqueue.duration_ms'], 0.25);
  assert.deepEqual(
    summary?.events.map((e) => e.name),
    ['futex.waits', 'sched.blocked_waits', 'sched.runqueues'],
  );
});
