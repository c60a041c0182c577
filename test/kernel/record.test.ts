import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ABI_VERSION,
  CudaApi,
  DEVICE_UNKNOWN,
  cudaApiName,
  Kind,
  LAYOUT,
  RecordError,
  decodeHello,
  decodeRecords,
  decodeStats,
  launchCall,
  readLaunchCall,
} from '../../src/kernel/record.js';
import { hello, launch, op, record, register, runqueue, stats, sync, writeTask } from './records.js';

const payload = (frame: Buffer) => frame.subarray(LAYOUT.cw_frame.size);

test('a launch record decodes with its header, dims, stream and return code', () => {
  const [r] = decodeRecords(
    launch({
      api: CudaApi.cudaLaunchKernel,
      pid: 42,
      tid: 43,
      comm: 'trainer',
      cpu: 1,
      startNs: 5n,
      endNs: 9n,
      func: 0x401000n,
      stream: 0xabcn,
      ret: 2,
      grid: [64, 2, 1],
      block: [256, 1, 1],
      device: 1,
    }),
  );
  assert.ok(r?.kind === Kind.CUDA_LAUNCH);
  assert.deepEqual(
    {
      api: r.api,
      perThread: r.perThread,
      pid: r.pid,
      tid: r.tid,
      comm: r.comm,
      cpu: r.cpu,
      startNs: r.startNs,
      endNs: r.endNs,
    },
    {
      api: CudaApi.cudaLaunchKernel,
      perThread: false,
      pid: 42,
      tid: 43,
      comm: 'trainer',
      cpu: 1,
      startNs: 5n,
      endNs: 9n,
    },
  );
  assert.deepEqual(r.launch, {
    func: 0x401000n,
    stream: 0xabcn,
    sharedMem: 128n,
    grid: [64, 2, 1],
    block: [256, 1, 1],
    ret: 2,
    device: 1,
  });
});

test('launches read one after another into one call each give their own function and stream, whichever half changed', () => {
  const task = { pid: 42, tid: 43, comm: 'trainer', cpu: 1, startNs: 5n, endNs: 9n };
  // Runs of one function and stream, then each half of each changed alone.
  const calls = [
    { func: 0x401000n, stream: 0xabcn },
    { func: 0x401000n, stream: 0xabcn },
    { func: 0x401000n + (1n << 32n), stream: 0xabcn },
    { func: 0x401000n + (1n << 32n), stream: 0xabcn + (1n << 40n) },
    { func: 0x402000n + (1n << 32n), stream: 0xabcn + (1n << 40n) },
    { func: 0x402000n + (1n << 32n), stream: 0xabdn + (1n << 40n) },
    { func: 0n, stream: 0n },
  ];
  const batch = Buffer.concat(calls.map((c) => launch({ ...task, ...c })));
  const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  const into = launchCall();
  calls.forEach((expected, i) => {
    const call = readLaunchCall(view, i * LAYOUT.cw_event.size, into);
    assert.deepEqual({ func: call.func, stream: call.stream }, expected, `launch ${String(i)}`);
  });
});

test('a per-thread variant decodes as its entry point with perThread set, and is named with its suffix', () => {
  const [launched, copied] = decodeRecords(
    Buffer.concat([
      launch({ api: CudaApi.cudaGraphLaunch, perThread: true, func: 0x9n }),
      record({ kind: Kind.CUDA_MEMCPY, api: CudaApi.cuMemcpyHtoD, perThread: true }),
    ]),
  );
  assert.equal(launched?.api, CudaApi.cudaGraphLaunch);
  assert.equal(launched.perThread, true);
  assert.equal(cudaApiName(launched.api, launched.perThread), 'cudaGraphLaunch_ptsz');
  assert.equal(cudaApiName(copied?.api ?? 0, copied?.perThread), 'cuMemcpyHtoD_ptds');
  assert.equal(cudaApiName(CudaApi.cudaEventQuery), 'cudaEventQuery');
  assert.equal(cudaApiName(999), 'api(999)');
});

test('a polling sync carries its query count and device; a CUDA op its handles', () => {
  const [polled, recorded] = decodeRecords(
    Buffer.concat([
      sync({ api: CudaApi.cudaEventQuery, handle: 0xe0n, device: DEVICE_UNKNOWN, polls: 31 }),
      op({ api: CudaApi.cudaGraphInstantiate, graph: 0x6n, exec: 0x7n, device: 1 }),
    ]),
  );
  assert.ok(polled?.kind === Kind.CUDA_SYNC && recorded?.kind === Kind.CUDA_OP);
  assert.deepEqual(polled.sync, { handle: 0xe0n, ret: 0, device: DEVICE_UNKNOWN, polls: 31 });
  assert.deepEqual(recorded.op, { stream: 0n, event: 0n, graph: 0x6n, exec: 0x7n, ret: 0, device: 1 });
});

test('each record carries the name its thread had then, across renames and bytes left after the NUL', () => {
  const named = (comm: string, tail = '') => {
    const buf = record({ kind: Kind.PROC_EXEC, comm });
    buf.write(tail, LAYOUT.cw_event.fields.comm + comm.length + 1, 'utf8');
    return buf;
  };
  const comms = decodeRecords(
    Buffer.concat([named('python3'), named('worker'), named('python3', 'xy'), named('python'), named('worker')]),
  ).map((r) => r.comm);
  assert.deepEqual(comms, ['python3', 'worker', 'python3', 'python', 'worker']);
});

test('a full-length comm (no NUL terminator) decodes to its 16 bytes', () => {
  const buf = record({ kind: Kind.PROC_EXEC });
  buf.write('abcdefghijklmnop', LAYOUT.cw_event.fields.comm, 16, 'utf8');
  assert.equal(decodeRecords(buf)[0]?.comm, 'abcdefghijklmnop');
});

test('nested tasks decode: the futex waker and the run-queue holder', () => {
  const F = LAYOUT.cw_futex.fields;
  const futex = record({
    kind: Kind.FUTEX_WAIT,
    body: (buf, u) => {
      buf.writeBigUInt64LE(0x7ffd0000n, u + F.uaddr);
      writeTask(buf, u + F.waker, { pid: 7, tid: 8, comm: 'holder' });
      buf.writeUInt32LE(128, u + F.op);
      buf.writeInt32LE(-110, u + F.ret);
    },
  });
  const waited = runqueue({
    holders: [
      { pid: 9, tid: 10, comm: 'hog', oncpuNs: 3_000_000n },
      { pid: 11, tid: 12, comm: 'spin', oncpuNs: 1_000_000n },
    ],
    seenNs: 4_500_000n,
    preempted: true,
  });
  const [f, q] = decodeRecords(Buffer.concat([futex, waited]));
  assert.ok(f?.kind === Kind.FUTEX_WAIT && q?.kind === Kind.SCHED_RUNQUEUE);
  assert.deepEqual(f.futex, { uaddr: 0x7ffd0000n, waker: { pid: 7, tid: 8, comm: 'holder' }, op: 128, ret: -110 });
  // The list ends at the first empty slot: the third here.
  assert.deepEqual(q.runqueue, {
    holders: [
      { pid: 9, tid: 10, comm: 'hog', oncpuNs: 3_000_000n },
      { pid: 11, tid: 12, comm: 'spin', oncpuNs: 1_000_000n },
    ],
    seenNs: 4_500_000n,
    preempted: true,
  });
});

test('a register record carries the kernel symbol', () => {
  const [r] = decodeRecords(register({ func: 0x1234n, name: '_Z6matmulPfS_i' }));
  assert.ok(r?.kind === Kind.CUDA_REGISTER);
  assert.deepEqual(r.register, { func: 0x1234n, name: '_Z6matmulPfS_i' });
});

test('the mapped-library and GPU-exit records decode with their task alone', () => {
  const [mapped, exited] = decodeRecords(
    Buffer.concat([record({ kind: Kind.CUDA_MAPPED, pid: 5 }), record({ kind: Kind.PROC_EXIT, pid: 6 })]),
  );
  assert.deepEqual([mapped?.kind, mapped?.pid, exited?.kind, exited?.pid], [Kind.CUDA_MAPPED, 5, Kind.PROC_EXIT, 6]);
});

test("a record's thread context decodes as hex trace and span ids; all zero is none", () => {
  const stamped = record({ kind: Kind.PROC_EXIT });
  const at = LAYOUT.cw_event.fields.context;
  const ids = Buffer.from('0af7651916cd43dd8448eb211c80319cb7ad6b7169203331', 'hex');
  ids.copy(stamped, at);
  const [withContext, without] = decodeRecords(Buffer.concat([stamped, record({ kind: Kind.PROC_EXIT })]));
  assert.deepEqual(withContext?.spanContext, {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
  });
  assert.equal(without?.spanContext, undefined);
});

test('a batch that is not whole records is refused', () => {
  assert.throws(() => decodeRecords(Buffer.alloc(200)), {
    name: 'RecordError',
    message: new RegExp(`200 bytes is not a whole number of ${LAYOUT.cw_event.size}-byte records`),
  });
});

test('an unknown kind is refused with the record index', () => {
  const batch = Buffer.concat([record({ kind: Kind.PROC_EXEC }), record({ kind: 99 })]);
  assert.throws(() => decodeRecords(batch), { name: 'RecordError', message: /record 1: unknown kind 99/ });
});

test('HELLO from a loader with another ABI is refused', () => {
  assert.equal(decodeHello(payload(hello())).ncpus, 2);
  assert.throws(() => decodeHello(payload(hello({ abiVersion: ABI_VERSION + 1 }))), RecordError);
  assert.throws(() => decodeHello(payload(hello({ eventSize: 128 }))), /rebuild/);
});

test('HELLO of a recording made with another ABI is refused, naming both ABIs', () => {
  assert.throws(() => decodeHello(payload(hello({ abiVersion: ABI_VERSION - 1 })), 'recording'), {
    name: 'RecordError',
    message: `the recording was made with ABI ${ABI_VERSION - 1} (${LAYOUT.cw_event.size}-byte records), this causeway reads ABI ${ABI_VERSION} (${LAYOUT.cw_event.size}-byte records): replay it with the causeway version that recorded it`,
  });
});

test('STATS decodes the clock pair, the per-kind counters, the unnamed kernels and the thread context counts', () => {
  const s = decodeStats(
    payload(
      stats({
        monoNs: 10n,
        realNs: 20n,
        drops: { [Kind.SCHED_RUNQUEUE]: 3 },
        events: { [Kind.FUTEX_WAIT]: 5 },
        unnamedKernels: 2,
        threadContext: { processes: 4, unresolved: 1 },
      }),
    ),
  );
  assert.equal(s.monoNs, 10n);
  assert.equal(s.realNs, 20n);
  assert.equal(s.drops[Kind.SCHED_RUNQUEUE], 3);
  assert.equal(s.events[Kind.FUTEX_WAIT], 5);
  assert.equal(s.drops.length, Kind.MAX);
  assert.equal(s.unnamedKernels, 2);
  assert.equal(s.threadContextProcesses, 4);
  assert.equal(s.threadContextUnresolved, 1);
});
