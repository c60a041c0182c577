// OTLP/JSON as Tempo's /api/traces answers it, from a hand-written document (tempo-trace.ts:
// Tempo is not installed here). The Jaeger form (hex ids, resourceSpans) is covered against a
// real Jaeger in jaeger.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readTraces } from '../../src/store/otlp-json.js';
import { at, i, kv, s, tempoTrace } from './tempo-trace.js';

const ns = (ms: number) => BigInt(at(ms));

test('a Tempo trace: app spans by id in hex, kernel spans and span events back to kernel events, host ids, shed times', () => {
  const traces = readTraces(tempoTrace);
  assert.deepEqual([...traces.keys()], ['0af7651916cd43dd8448eb211c80319c']);
  const trace = traces.get('0af7651916cd43dd8448eb211c80319c');
  assert.ok(trace);
  assert.deepEqual(trace.spans, [
    // Node, no causeway.thread.tid: the main thread, whose tid is the pid, both the host's.
    {
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: '00f067aa0ba902b7',
      service: 'gateway',
      name: 'GET /checkout',
      startUnixNano: ns(0),
      endUnixNano: ns(600),
      pid: 5001,
      tid: 5001,
    },
    // The app said tid 13 in its container; its thread-scoped kernel spans say 30013 on the host.
    {
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      parentSpanId: '00f067aa0ba902b7',
      service: 'checkout',
      name: 'POST /checkout',
      startUnixNano: ns(50),
      endUnixNano: ns(550),
      pid: 30012,
      tid: 30013,
    },
  ]);
  const nspid = [30012, 12];
  assert.deepEqual(trace.events, [
    {
      kind: 'sched.blocked',
      pid: 5001,
      tid: 5001,
      comm: 'node',
      startUnixNano: ns(10),
      endUnixNano: ns(40),
      attributes: { 'causeway.process.nspid': [5001, 1], 'causeway.sched.state': 'S' },
    },
    {
      kind: 'sched.runqueue',
      pid: 30012,
      tid: 30013,
      comm: 'gunicorn',
      startUnixNano: ns(100),
      endUnixNano: ns(150),
      attributes: {
        'causeway.process.nspid': nspid,
        'causeway.sched.cpu': 3,
        'causeway.sched.holder.pid': 999,
        'causeway.sched.holder.comm': 'stress',
        'causeway.sched.preempted': true,
      },
    },
    // A launch is a point with the call's own duration; a retransmit has none.
    {
      kind: 'cuda.launch',
      pid: 30012,
      tid: 30013,
      comm: 'gunicorn',
      startUnixNano: ns(60),
      endUnixNano: ns(60) + 35_000n,
      attributes: {
        'causeway.process.nspid': nspid,
        'causeway.cuda.kernel': 'matmul(float*)',
        'causeway.cuda.grid': [64, 1, 1],
      },
    },
    {
      kind: 'tcp.retransmit',
      pid: 30012,
      tid: 30013,
      comm: 'gunicorn',
      startUnixNano: ns(200),
      endUnixNano: ns(200),
      attributes: { 'causeway.process.nspid': nspid, 'network.peer.address': '10.1.2.3', 'network.peer.port': 443 },
    },
  ]); // Its kernel summary span is marked causeway.attach.shed: kernel events of that time were shed.
  assert.deepEqual(trace.shed, [{ from: ns(50), to: ns(550) }]);
});

test('spans of other scopes are app spans even with causeway-like attributes; unknown kinds and bad ids are skipped', () => {
  const span = (spanId: string, scope: string, attributes: Record<string, object>) => ({
    resource: { attributes: kv({ 'service.name': s('svc'), 'process.pid': i(7) }) },
    scopeSpans: [
      {
        scope: { name: scope },
        spans: [
          {
            traceId: '0af7651916cd43dd8448eb211c80319c',
            spanId,
            name: spanId,
            startTimeUnixNano: '1',
            endTimeUnixNano: '2',
            attributes: kv(attributes),
          },
        ],
      },
    ],
  });
  const traces = readTraces({
    resourceSpans: [
      span('aaaaaaaaaaaaaaaa', 'my-app', { 'causeway.kind': s('futex.wait'), 'causeway.thread.tid': i(8) }),
      span('bbbbbbbbbbbbbbbb', 'causeway', { 'causeway.kind': s('gpu.meltdown'), 'causeway.thread.tid': i(8) }),
      span('not-an-id', 'my-app', {}),
    ],
  });
  const trace = traces.get('0af7651916cd43dd8448eb211c80319c');
  assert.deepEqual(
    trace?.spans.map((x) => [x.spanId, x.pid, x.tid]),
    [['aaaaaaaaaaaaaaaa', 7, 8]],
  );
  assert.deepEqual(trace.events, []);
});

test('a document that is not TracesData is refused with what is wrong', () => {
  assert.throws(
    () => readTraces({ resourceSpans: [{ scopeSpans: [{ spans: [{ spanId: 'x' }] }] }] }),
    /not OTLP\/JSON TracesData[\s\S]*traceId/,
  );
  assert.throws(() => readTraces(undefined), /not OTLP\/JSON TracesData/);
});
