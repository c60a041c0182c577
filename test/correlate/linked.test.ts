// Linked waits, through the correlator: a request span gets the waits of the process that
// served it, found by the connection it sent on (no wakeup to follow) or by the wakeup.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Correlator, type Attachment } from '../../src/correlate/correlator.js';
import { explainTrace } from '../../src/correlate/explain.js';
import { asRemote, isLinked } from '../../src/correlate/linked.js';
import type { Attributes, KernelEvent } from '../../src/kernel/events.js';
import * as A from '../../src/semconv/attributes.js';
import { CudaApi, Kind, LAYOUT } from '../../src/kernel/record.js';
import { record, sync as syncRecord, writeTask } from '../kernel/records.js';
import { shapedBatches } from '../kernel/shaped.js';
import { T0 as RECENT, appSpan, kernelEvent, storeWith } from '../store/traces.js';

const MS = 1_000_000n;
const T0 = 10_000n * MS;
const at = (ms: number) => T0 + BigInt(ms) * MS;
const FRONT = { pid: 100, tid: 100, comm: 'frontend' };
const ENGINE = { pid: 200, tid: 201, comm: 'engine' };

function event(
  who: { pid: number; tid: number; comm: string },
  kind: KernelEvent['kind'],
  from: number,
  to: number,
  attributes: Attributes = {},
): KernelEvent {
  return { kind, ...who, startUnixNano: at(from), endUnixNano: at(to), attributes };
}

const message = (who: typeof FRONT, direction: 'send' | 'recv', ms: number, connection: string) =>
  event(who, 'ipc.message', ms, ms, {
    [A.ATTR_CAUSEWAY_IPC_DIRECTION]: direction,
    [A.ATTR_CAUSEWAY_IPC_CONNECTION]: connection,
    [A.ATTR_CAUSEWAY_IPC_BYTES]: 64,
  });

const sync = (from: number, to: number) =>
  event(ENGINE, 'cuda.sync', from, to, { [A.ATTR_CAUSEWAY_CUDA_API]: 'cudaEventSynchronize' });

/** Joins one request span (FRONT's thread, [0, 400] ms) with `events` held, and returns its linked waits. */
function linkedTo(events: KernelEvent[]): KernelEvent[] {
  const joined: Attachment[] = [];
  const correlator = new Correlator({
    onJoined: (a) => joined.push(...a),
    now: () => at(2_000),
    maxJoinWaitMs: 500,
    retentionMs: 60_000,
    maxEvents: 10_000,
  });
  correlator.addEvents(events);
  const span = {
    traceId: 'a'.repeat(32),
    spanId: 'b'.repeat(16),
    name: 'POST /generate',
    startUnixNano: at(0),
    endUnixNano: at(400),
    attributes: {},
    resource: {},
  };
  correlator.addSpans([{ span, place: { hostPid: FRONT.pid, hostTid: FRONT.tid } }]);
  correlator.join();
  const attached = joined.flatMap((a) => a.events);
  assert.equal(correlator.counters().eventsLinked, attached.filter(isLinked).length);
  assert.ok(!attached.some((e) => e.kind === 'ipc.message'), 'messages only link: they are not attached');
  return joined.flatMap((a) => a.events).filter(isLinked);
}

test('with no wakeup, the wait of the process that received on the connection and replied on it is linked, shared by the exchanges open across it', () => {
  const linked = linkedTo([
    message(FRONT, 'send', 10, 'c1'),
    message(ENGINE, 'recv', 20, 'c1'),
    message(ENGINE, 'recv', 25, 'c2'), // another request, batched with ours
    sync(50, 300),
    message(ENGINE, 'send', 310, 'c1'),
    message(ENGINE, 'send', 311, 'c2'),
    message(FRONT, 'recv', 320, 'c1'),
    sync(330, 390), // after the reply: not ours
    event(ENGINE, 'sched.blocked', 30, 45, { [A.ATTR_CAUSEWAY_SCHED_STATE]: 'S' }), // idle, not a wait for us
  ]);
  assert.equal(linked.length, 1);
  const [wait] = linked;
  assert.equal(wait?.kind, 'cuda.sync');
  assert.equal(wait.pid, FRONT.pid, "owned by the request's thread");
  assert.equal(wait.tid, FRONT.tid);
  assert.deepEqual([wait.startUnixNano, wait.endUnixNano], [at(50), at(300)]);
  assert.equal(wait.attributes[A.ATTR_CAUSEWAY_LINK], 'connection');
  assert.equal(wait.attributes[A.ATTR_CAUSEWAY_SHARED_COUNT], 2);
  assert.equal(wait.attributes[A.ATTR_CAUSEWAY_CUDA_API], 'cudaEventSynchronize');
  const remote = asRemote(wait);
  assert.deepEqual([remote.pid, remote.tid, remote.comm], [ENGINE.pid, ENGINE.tid, ENGINE.comm]);
  assert.equal(isLinked(remote), false, 'as the engine saw it');
});

test("a wait of the engine that woke two of the request's waits is linked once, though read as two objects", async () => {
  const F = LAYOUT.cw_futex.fields;
  const wait = (from: number, to: number) =>
    record({
      kind: Kind.FUTEX_WAIT,
      ...FRONT,
      startNs: BigInt(from) * MS,
      endNs: BigInt(to) * MS,
      body: (buf, u) => {
        writeTask(buf, u + F.waker, ENGINE);
      },
    });
  // As the capture makes them: the correlator holds them by column and makes them again when read.
  const [events = []] = await shapedBatches(
    [
      [
        syncRecord({
          ...ENGINE,
          api: CudaApi.cudaStreamSynchronize,
          handle: 0x10n,
          startNs: 5n * MS,
          endNs: 250n * MS,
        }),
        wait(10, 100),
        wait(120, 200),
      ],
    ],
    { epochNs: T0 },
  );
  const linked = linkedTo(events);
  assert.deepEqual(
    linked.map((e) => [e.kind, e.attributes[A.ATTR_CAUSEWAY_LINK], e.attributes[A.ATTR_CAUSEWAY_REMOTE_TID]]),
    [['cuda.sync', 'waker', ENGINE.tid]],
  );
});

test('a connection whose peer never replied within the request links nothing', () => {
  assert.deepEqual(
    linkedTo([
      message(FRONT, 'send', 10, 'c1'),
      message(ENGINE, 'recv', 20, 'c1'),
      sync(50, 300),
      message(FRONT, 'recv', 320, 'c1'), // a reply from no followed process (the engine's send is not seen)
    ]),
    [],
  );
});

const FRONT_FEEDER = { pid: FRONT.pid, tid: 102, comm: 'QueueFeederThr' };
const FRONT_READER = { pid: FRONT.pid, tid: 103, comm: 'reader' };
const ENGINE_FEEDER = { pid: ENGINE.pid, tid: 202, comm: 'QueueFeederThr' };
const OTHER = { pid: 300, tid: 300, comm: 'other' };

test('over pipes the reply comes on another pipe: the wait of the thread that read the request, until the reply was written, is linked, shared by the replies read', () => {
  const linked = linkedTo([
    message(FRONT, 'send', 10, 'pipe:0xa'),
    message(ENGINE, 'recv', 20, 'pipe:0xa'),
    message(ENGINE, 'recv', 25, 'pipe:0xa'), // another request, batched with ours
    sync(50, 300),
    event(ENGINE_FEEDER, 'futex.wait', 30, 305), // the queue's feeder, idle until handed the replies: not ours
    message(ENGINE_FEEDER, 'send', 310, 'pipe:0xb'),
    message(ENGINE_FEEDER, 'send', 311, 'pipe:0xb'),
    message(ENGINE, 'send', 312, 'pipe:0xlog'), // a log line nobody followed reads: no reply
    message(FRONT, 'recv', 320, 'pipe:0xb'),
    message(FRONT_READER, 'recv', 321, 'pipe:0xb'), // the other request's reply
    sync(330, 390), // after the reply: not ours
  ]);
  assert.deepEqual(
    linked.map((e) => [
      e.kind,
      e.tid,
      e.attributes[A.ATTR_CAUSEWAY_REMOTE_TID],
      e.startUnixNano,
      e.endUnixNano,
      e.attributes[A.ATTR_CAUSEWAY_LINK],
      e.attributes[A.ATTR_CAUSEWAY_SHARED_COUNT],
    ]),
    [['cuda.sync', FRONT.tid, ENGINE.tid, at(50), at(300), 'connection', 2]],
  );
});

test("over pipes, a request whose thread touched no pipe is served through its process's: a queue's feeder writes, a reader thread reads", () => {
  const linked = linkedTo([
    event(FRONT, 'sched.runqueue', 5, 6), // the request's thread, seen under its own name
    message(FRONT_FEEDER, 'send', 10, 'pipe:0xa'),
    message(ENGINE, 'recv', 20, 'pipe:0xa'),
    sync(50, 300),
    message(ENGINE, 'send', 310, 'pipe:0xb'),
    message(FRONT_READER, 'recv', 320, 'pipe:0xb'),
  ]);
  assert.deepEqual(
    linked.map((e) => [
      e.kind,
      e.pid,
      e.tid,
      e.comm,
      e.attributes[A.ATTR_CAUSEWAY_LINK],
      e.attributes[A.ATTR_CAUSEWAY_SHARED_COUNT],
    ]),
    [['cuda.sync', FRONT.pid, FRONT.tid, FRONT.comm, 'connection', 1]],
    "owned by the request's thread, not the feeder",
  );
});

test('over pipes, a wait is shared by the replies written before the next step, even while the next requests are read, and with no next step, not by a write after the engine reads again', () => {
  const batch = [
    message(FRONT, 'send', 10, 'pipe:0xa'),
    message(ENGINE, 'recv', 20, 'pipe:0xa'),
    message(ENGINE, 'recv', 25, 'pipe:0xa'),
    sync(50, 300),
  ];
  const replies = [
    message(ENGINE_FEEDER, 'send', 310, 'pipe:0xb'),
    message(ENGINE_FEEDER, 'send', 311, 'pipe:0xb'),
    message(FRONT, 'recv', 320, 'pipe:0xb'),
    message(FRONT_READER, 'recv', 321, 'pipe:0xb'),
  ];
  const sharedCounts = (events: KernelEvent[]) =>
    linkedTo(events).map((e) => e.attributes[A.ATTR_CAUSEWAY_SHARED_COUNT]);
  const nextRequestRead = message(ENGINE, 'recv', 305, 'pipe:0xa'); // already queued: read before the replies are written
  const nextStep = [
    sync(330, 390),
    message(ENGINE_FEEDER, 'send', 392, 'pipe:0xb'),
    message(FRONT_READER, 'recv', 393, 'pipe:0xb'),
  ];
  assert.deepEqual(sharedCounts([...batch, nextRequestRead, ...replies, ...nextStep]), [2]);
  const stopped = [
    message(ENGINE, 'recv', 350, 'pipe:0xa'), // a stop message
    message(ENGINE_FEEDER, 'send', 360, 'pipe:0xb'), // and the end of the replies it sends back
    message(FRONT_READER, 'recv', 365, 'pipe:0xb'),
  ];
  assert.deepEqual(sharedCounts([...batch, ...replies, ...stopped]), [2]);
});

test('over pipes, nothing is linked unless the process that read the request wrote, after reading it, on a pipe the request then read', () => {
  const served = [message(FRONT, 'send', 10, 'pipe:0xa'), message(ENGINE, 'recv', 20, 'pipe:0xa'), sync(50, 300)];
  const replies: [string, KernelEvent[]][] = [
    [
      'its write went to a pipe the request never read',
      [
        message(ENGINE, 'send', 310, 'pipe:0xc'),
        message(OTHER, 'recv', 315, 'pipe:0xc'),
        message(FRONT, 'recv', 320, 'pipe:0xb'),
      ],
    ],
    [
      'its write on the reply pipe came before it read the request (an earlier reply)',
      [message(ENGINE, 'send', 15, 'pipe:0xb'), message(FRONT, 'recv', 320, 'pipe:0xb')],
    ],
    [
      'the request read the reply pipe before the write',
      [message(FRONT, 'recv', 200, 'pipe:0xb'), message(ENGINE, 'send', 310, 'pipe:0xb')],
    ],
    [
      'another process wrote the reply pipe',
      [message(OTHER, 'send', 310, 'pipe:0xb'), message(FRONT, 'recv', 320, 'pipe:0xb')],
    ],
    [
      'it wrote back on the pipe the request went out on',
      [message(ENGINE, 'send', 310, 'pipe:0xa'), message(FRONT, 'recv', 320, 'pipe:0xa')],
    ],
  ];
  for (const [what, reply] of replies) assert.deepEqual(linkedTo([...served, ...reply]), [], what);
});

test("a wait woken by another process's thread links that thread's waits during it, within the request", () => {
  const linked = linkedTo([
    event(FRONT, 'sched.blocked', -200, 320, {
      [A.ATTR_CAUSEWAY_SCHED_STATE]: 'S',
      [A.ATTR_CAUSEWAY_SCHED_WAKER_PID]: ENGINE.pid,
      [A.ATTR_CAUSEWAY_SCHED_WAKER_TID]: ENGINE.tid,
      [A.ATTR_CAUSEWAY_SCHED_WAKER_COMM]: ENGINE.comm,
    }),
    event(ENGINE, 'block.io', -150, -100, { [A.ATTR_CAUSEWAY_BLOCK_OP]: 'write' }), // before the request: not its
    event(ENGINE, 'block.io', 40, 200, { [A.ATTR_CAUSEWAY_BLOCK_OP]: 'write' }),
    event(ENGINE, 'sched.blocked', 40, 210, { [A.ATTR_CAUSEWAY_SCHED_STATE]: 'D' }),
  ]);
  assert.deepEqual(
    linked.map((e) => [e.kind, e.attributes[A.ATTR_CAUSEWAY_LINK], e.attributes[A.ATTR_CAUSEWAY_SHARED_COUNT]]),
    [
      ['block.io', 'waker', 1],
      ['sched.blocked', 'waker', 1],
    ],
  );
});

test('a wait found both ways is linked once, by the connection', () => {
  const linked = linkedTo([
    message(FRONT, 'send', 10, 'c1'),
    message(ENGINE, 'recv', 20, 'c1'),
    sync(50, 300),
    message(ENGINE, 'send', 310, 'c1'),
    event(FRONT, 'sched.blocked', 15, 311, {
      [A.ATTR_CAUSEWAY_SCHED_STATE]: 'S',
      [A.ATTR_CAUSEWAY_SCHED_WAKER_PID]: ENGINE.pid,
      [A.ATTR_CAUSEWAY_SCHED_WAKER_TID]: ENGINE.tid,
      [A.ATTR_CAUSEWAY_SCHED_WAKER_COMM]: ENGINE.comm,
    }),
    message(FRONT, 'recv', 320, 'c1'),
  ]);
  assert.deepEqual(
    linked.map((e) => e.attributes[A.ATTR_CAUSEWAY_LINK]),
    ['connection'],
  );
});

test('explain_trace follows a linked wait into the engine: root cause, culprit and the chain with its link', async (t) => {
  const at = (ms: number) => RECENT + BigInt(ms) * MS; // within the store's retention
  const engine = { pid: 20, tid: 21, comm: 'engine' };
  const request = appSpan({ trace: 1, span: 1, service: 'front', start: at(0), end: at(300), pid: 10, tid: 10 });
  const gpu = {
    [A.ATTR_CAUSEWAY_CUDA_API]: 'cudaEventSynchronize',
    [A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT]: 2,
    [A.ATTR_CAUSEWAY_CUDA_INFLIGHT_KERNELS]: ['mlp(float*)', 'mlp(float*)'],
    [A.ATTR_CAUSEWAY_CUDA_INFLIGHT_GRAPHS]: ['0x1'],
  };
  const linked = kernelEvent('cuda.sync', { pid: 10, tid: 10, comm: 'frontend' }, at(50), at(250), {
    ...gpu,
    [A.ATTR_CAUSEWAY_LINK]: 'connection',
    [A.ATTR_CAUSEWAY_REMOTE_PID]: engine.pid,
    [A.ATTR_CAUSEWAY_REMOTE_TID]: engine.tid,
    [A.ATTR_CAUSEWAY_REMOTE_COMM]: engine.comm,
    [A.ATTR_CAUSEWAY_SHARED_COUNT]: 3,
  });
  // The engine's own wait is in the store too: it is the engine's, not another GPU user.
  const store = await storeWith([request], [linked, kernelEvent('cuda.sync', engine, at(50), at(250), gpu)]);
  t.after(() => store.close());
  const answer = await explainTrace([store], request.span.traceId);
  assert.equal(answer?.root_cause?.kind, 'cuda.sync');
  assert.deepEqual(answer.root_cause.culprit, { ...engine, cuda_kernel: 'mlp(float*)' });
  assert.deepEqual(
    answer.root_cause.chain.map((l) => [l.pid, l.tid, l.link, l.shared_by]),
    [
      [10, 10, undefined, undefined],
      [20, 21, 'connection', 3],
    ],
  );
  assert.match(
    answer.root_cause.evidence[0] ?? '',
    /linked by the connection it sent the request on; that wait served 3/,
  );
});
