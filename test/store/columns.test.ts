import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Attributes } from '../../src/kernel/events.js';
import * as A from '../../src/semconv/attributes.js';
import { json } from '../../src/store/columns.js';
import { MS, T0, appSpan, ids, kernelEvent, storeWith, waker } from './traces.js';

const task = { pid: 10, tid: 11, comm: 'app' };
const at = (ms: number) => T0 + BigInt(ms) * MS;

test('kernel events packed by column are stored as the events said: attributes JSON, waker, kernel, NULLs', async (t) => {
  const process = { [A.ATTR_PROCESS_EXECUTABLE_PATH]: '/usr/bin/python3', [A.ATTR_CONTAINER_ID]: 'c0ffee' };
  const own: Attributes[] = [
    {},
    { 'causeway.futex.uaddr': '0x10', n: 3, f: 0.125, neg: -7, big: 1e21, zero: -0 },
    { quote: 'say "hi"\n\\ \u00e9\u{1f600}', yes: true, no: false, list: ['a', 'b"'], nums: [1, 2.5] },
    { [A.ATTR_CAUSEWAY_CUDA_INFLIGHT_KERNELS]: ['gemm', 'relu'], nan: Number.NaN },
    { [A.ATTR_CAUSEWAY_CUDA_KERNEL]: 'softmax', '0': 'numeric key', undef: undefined as unknown as string },
    waker('futex', { pid: 0, tid: 0, comm: 'swapper/1' }),
    waker('futex', { pid: 20, tid: 21, comm: 'app' }),
  ];
  const kinds = [
    'sched.runqueue',
    'futex.wait',
    'block.io',
    'cuda.sync',
    'cuda.launch',
    'futex.wait',
    'futex.wait',
  ] as const;
  // Several events per batch, so that strings repeat within one.
  const events = own.map((attributes, i) =>
    kernelEvent(kinds[i] ?? 'futex.wait', task, at(i), at(i + 1), { ...process, ...attributes }),
  );
  const store = await storeWith([], events);
  t.after(() => store.close());
  const rows = await store.rows(
    `SELECT kind, comm, attributes, other_pid, other_tid, other_comm, cuda_kernel, duration_ms FROM kernel_events ORDER BY event_id`,
  );
  assert.deepEqual(
    rows,
    own.map((attributes, i) => [
      kinds[i],
      'app',
      JSON.stringify(attributes),
      i === 5 ? 0 : i === 6 ? 20 : null,
      i === 5 ? 0 : i === 6 ? 21 : null,
      i === 5 ? 'swapper/1' : i === 6 ? 'app' : null,
      i === 3 ? 'gemm' : i === 4 ? 'softmax' : null,
      1,
    ]),
  );
  // What explain_trace reads back: the attributes without the process's.
  const read = await store.events({ pid: 10, from: at(0), to: at(10) });
  assert.deepEqual(
    read.map((e) => e.attributes),
    own.map((attributes) => JSON.parse(JSON.stringify(attributes)) as Attributes),
  );
});

test("each event's stamp (the span its thread published as active) is stored, NULL when it had none, and read back", async (t) => {
  const stamp = { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16) };
  const stamped = { ...kernelEvent('cuda.sync', task, at(0), at(2)), spanContext: stamp };
  const store = await storeWith([], [stamped, kernelEvent('futex.wait', task, at(1), at(3))]);
  t.after(() => store.close());
  assert.deepEqual(
    await store.rows(`SELECT kind, active_trace_id, active_span_id FROM kernel_events ORDER BY event_id`),
    [
      ['cuda.sync', stamp.traceId, stamp.spanId],
      ['futex.wait', null, null],
    ],
  );
  const read = await store.events({ pid: 10, tid: 11, from: at(0), to: at(5) });
  assert.deepEqual(
    read.map((e) => [e.kind, e.spanContext]),
    [
      ['cuda.sync', stamp],
      ['futex.wait', undefined],
    ],
  );
});

test('a NULL lands on its own row across validity bytes, words and data chunks (5,000 events, every value read back)', async (t) => {
  // Which rows have a waker, a CUDA kernel and a stamp: patterns that differ in every bit of a
  // mask byte and from one 64-row word and 2,048-row chunk to the next.
  const kernel = (i: number) => i % 7 === 2;
  // A waker is the other task of a futex wait only.
  const waked = (i: number) => i % 3 !== 0 && !kernel(i);
  const stamped = (i: number) => i % 130 < 65;
  const events = Array.from({ length: 5000 }, (_, i) => ({
    ...kernelEvent(
      kernel(i) ? 'cuda.launch' : 'futex.wait',
      { pid: 1000 + (i % 5), tid: i, comm: `t${String(i % 11)}` },
      at(i),
      at(i) + BigInt(i),
      {
        ...(waked(i) ? waker('futex', { pid: i % 2, tid: i + 1, comm: `w${String(i % 13)}` }) : {}),
        ...(kernel(i) ? { [A.ATTR_CAUSEWAY_CUDA_KERNEL]: `k${String(i)}` } : {}),
      },
    ),
    ...(stamped(i) ? { spanContext: { traceId: i.toString(16).padStart(32, '0'), spanId: 'c'.repeat(16) } } : {}),
  }));
  const store = await storeWith([], events);
  t.after(() => store.close());
  const rows = await store.rows(
    `SELECT pid, tid, comm, end_ns - start_ns, other_pid, other_tid, other_comm, cuda_kernel, active_trace_id FROM kernel_events ORDER BY event_id`,
  );
  assert.deepEqual(
    rows,
    events.map((_, i) => [
      1000 + (i % 5),
      i,
      `t${String(i % 11)}`,
      BigInt(i),
      waked(i) ? i % 2 : null,
      waked(i) ? i + 1 : null,
      waked(i) ? `w${String(i % 13)}` : null,
      kernel(i) ? `k${String(i)}` : null,
      stamped(i) ? i.toString(16).padStart(32, '0') : null,
    ]),
  );
});

test('app spans packed by column are stored as they came: attributes as JSON, NULLs, status, and their processes', async (t) => {
  const attributes: Record<string, unknown>[] = [
    {},
    { 'http.route': '/predict', n: 3, f: 0.125, nan: Number.NaN, yes: true, skipped: undefined },
    { big: 2n ** 60n, bytes: new Uint8Array([0, 171]), list: ['a', 2n ** 60n, new Uint8Array([255])] },
    { kv: { inner: { quote: 'say "hi"\n\u{1f600}' } }, [A.ATTR_CONTAINER_ID]: 'kept: a span keeps every attribute' },
  ];
  const spans = attributes.map((attrs, i) => {
    const placed = appSpan({ trace: 1, span: 10 + i, start: at(i), end: at(i + 2), pid: 10, tid: 11 });
    Object.assign(placed.span, {
      attributes: attrs,
      resource: { ...placed.span.resource, [A.ATTR_PROCESS_EXECUTABLE_PATH]: '/usr/bin/python3' },
      ...(i === 1 ? { parentSpanId: ids(10).spanId, status: { code: 2, message: 'boom' }, kind: 3 } : {}),
    });
    // The last span's process is not on this host: no pid nor tid.
    return i === 3 ? { span: { ...placed.span, serviceName: 'remote' }, place: undefined } : placed;
  });
  const store = await storeWith(spans, []);
  t.after(() => store.close());
  const rows = await store.rows(
    `SELECT span_id, parent_span_id, service, name, span_kind, duration_ms, pid, tid, status_code, attributes FROM spans ORDER BY seq`,
  );
  assert.deepEqual(
    rows,
    spans.map(({ span, place }) => [
      span.spanId,
      span.parentSpanId ?? null,
      span.serviceName,
      'handle-request',
      span.kind,
      2,
      place?.hostPid ?? null,
      place?.hostTid ?? null,
      span.status?.code ?? 0,
      json(span.attributes),
    ]),
  );
  assert.deepEqual(JSON.parse(String(rows[2]?.[9])), {
    big: '1152921504606846976',
    bytes: '00ab',
    list: ['a', '1152921504606846976', 'ff'],
  });
  assert.deepEqual(await store.rows(`SELECT pid, service, executable, container_id FROM processes`), [
    [10, 'api', '/usr/bin/python3', null],
  ]);
});

test('app spans in batches bigger than a data chunk: every row as it came, numbered on across writes, each process once', async (t) => {
  // NULL parents, pids and tids in patterns that differ across mask bytes, 64-row words and
  // 2,048-row chunks; unicode names and services; two batches, the second in a later write.
  const span = (i: number) => {
    const placed = appSpan({
      trace: 1 + (i % 97),
      span: 1000 + i,
      ...(i % 3 === 0 ? {} : { parent: 1000 + i - 1 }),
      name: `étape-${String(i % 13)}-\u{1f680}`,
      service: `svc-${String(i % 4)}-\u00fc`,
      start: at(i),
      end: at(i) + BigInt(i) * 1000n,
      pid: 100 + (i % 6),
      ...(i % 130 < 65 ? { tid: i } : {}),
    });
    Object.assign(placed.span, { kind: i % 6, status: { code: i % 3 }, attributes: { i, odd: i % 2 === 1 } });
    return i % 5 === 4 ? { span: placed.span, place: undefined } : placed;
  };
  const first = Array.from({ length: 5000 }, (_, i) => span(i));
  const second = Array.from({ length: 2100 }, (_, i) => span(5000 + i));
  const store = await storeWith(first, []);
  t.after(() => store.close());
  store.addSpans(second);
  await store.flush();
  const rows = await store.rows(
    `SELECT seq, trace_id, span_id, parent_span_id, service, name, span_kind, end_ns - start_ns, duration_ms, pid, tid, status_code, attributes FROM spans ORDER BY seq`,
  );
  assert.deepEqual(
    rows,
    [...first, ...second].map(({ span: s, place }, i) => [
      BigInt(i),
      s.traceId,
      s.spanId,
      s.parentSpanId ?? null,
      s.serviceName,
      s.name,
      i % 6,
      BigInt(i) * 1000n,
      i / 1000,
      place?.hostPid ?? null,
      place?.hostTid ?? null,
      i % 3,
      JSON.stringify(s.attributes),
    ]),
  );
  // A process is a (pid, service) pair seen with a pid: 100 + i % 6 and i % 4 meet in 12 pairs.
  assert.deepEqual(await store.rows(`SELECT pid, service FROM processes ORDER BY pid, service`), [
    [100, 'svc-0-\u00fc'],
    [100, 'svc-2-\u00fc'],
    [101, 'svc-1-\u00fc'],
    [101, 'svc-3-\u00fc'],
    [102, 'svc-0-\u00fc'],
    [102, 'svc-2-\u00fc'],
    [103, 'svc-1-\u00fc'],
    [103, 'svc-3-\u00fc'],
    [104, 'svc-0-\u00fc'],
    [104, 'svc-2-\u00fc'],
    [105, 'svc-1-\u00fc'],
    [105, 'svc-3-\u00fc'],
  ]);
});
