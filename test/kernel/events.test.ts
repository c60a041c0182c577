import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as A from '../../src/semconv/attributes.js';
import { EpochClock } from '../../src/kernel/clock.js';
import { CudaState } from '../../src/kernel/cuda.js';
import { Demangler } from '../../src/kernel/demangle.js';
import { BlockDevices } from '../../src/kernel/devices.js';
import { EventShaper, type KernelEvent } from '../../src/kernel/events.js';
import { ProcessTable } from '../../src/kernel/processes.js';
import { CudaApi, Kind, LAYOUT, decodeRecords } from '../../src/kernel/record.js';
import { SymbolResolver } from '../../src/kernel/symbols.js';
import { launch, malloc, record, register, sync, writeTask } from './records.js';

const errors: string[] = [];
const demangler = new Demangler((message) => {
  errors.push(message);
});
after(() => {
  demangler.close();
});

const sys = mkdtempSync(join(tmpdir(), 'causeway-sys-'));
mkdirSync(join(sys, 'dev/block/253:16'), { recursive: true });
writeFileSync(join(sys, 'dev/block/253:16/uevent'), 'MAJOR=253\nMINOR=16\nDEVNAME=vdb\nDEVTYPE=disk\n');

/** Causeway's own pid in these tests. */
const SELF_PID = 99_999;

/** A fresh pipeline, as a capture builds it, that shapes batches of raw records. */
function pipeline() {
  const clock = new EpochClock();
  clock.update(0n, 1_700_000_000_000_000_000n);
  const cuda = new CudaState(demangler, new SymbolResolver());
  const shaper = new EventShaper({
    clock,
    cuda,
    processes: new ProcessTable(),
    devices: new BlockDevices(sys),
    self: new Set([SELF_PID]),
  });
  return async (...records: Buffer[]): Promise<KernelEvent[]> => {
    const decoded = decodeRecords(Buffer.concat(records));
    await cuda.learnNames(decoded);
    return decoded.map((r) => shaper.shape(r)).filter((e) => e !== undefined);
  };
}

const pid = process.pid;

test('a launch is named from __cudaRegisterFunction, demangled, and times become epoch nanoseconds', async () => {
  const events = await pipeline()(
    register({ pid, func: 0x5000n, name: '_Z6matmulPKfPfi' }),
    launch({
      pid,
      api: CudaApi.cudaLaunchKernel,
      func: 0x5000n,
      stream: 0x10n,
      startNs: 100n,
      endNs: 350n,
      grid: [8, 1, 1],
      block: [128, 1, 1],
    }),
  );
  assert.equal(events.length, 1, 'the register record is bookkeeping, not an event');
  const [event] = events;
  assert.equal(event?.kind, 'cuda.launch');
  assert.equal(event.startUnixNano, 1_700_000_000_000_000_100n);
  assert.equal(event.endUnixNano, 1_700_000_000_000_000_350n);
  assert.equal(event.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL], 'matmul(float const*, float*, int)');
  assert.equal(event.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL_SYMBOL], '_Z6matmulPKfPfi');
  assert.equal(event.attributes[A.ATTR_CAUSEWAY_CUDA_API], 'cudaLaunchKernel');
  assert.equal(event.attributes[A.ATTR_CAUSEWAY_CUDA_STREAM], '0x10');
  assert.deepEqual(event.attributes[A.ATTR_CAUSEWAY_CUDA_GRID], [8, 1, 1]);
  assert.equal(event.attributes[A.ATTR_PROCESS_EXECUTABLE_PATH], process.execPath);
});

test('a stream sync reports the kernels in flight on that stream only, then none', async () => {
  const shape = pipeline();
  const events = await shape(
    register({ pid, func: 0x1n, name: 'relu' }),
    register({ pid, func: 0x2n, name: '_Z4gemmv' }),
    launch({ pid, func: 0x1n, stream: 0xan }),
    launch({ pid, func: 0x2n, stream: 0xan }),
    launch({ pid, func: 0x2n, stream: 0xan }),
    launch({ pid, func: 0x1n, stream: 0xbn }),
    launch({ pid, func: 0x1n, stream: 0xan, ret: 700 }),
    sync({ pid, api: CudaApi.cudaStreamSynchronize, handle: 0xan }),
    sync({ pid, api: CudaApi.cudaStreamSynchronize, handle: 0xan }),
  );
  const [first, second] = events.filter((e) => e.kind === 'cuda.sync');
  assert.equal(first?.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], 3, 'the failed launch is not in flight');
  assert.deepEqual(first.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_KERNELS], ['relu', 'gemm()']);
  assert.equal(first.attributes[A.ATTR_CAUSEWAY_CUDA_STREAM], '0xa');
  assert.equal(second?.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], 0);
});

test('a device sync drains every stream of its process, not of others', async () => {
  const shape = pipeline();
  const events = await shape(
    launch({ pid, func: 0x1n, stream: 0xan }),
    launch({ pid, func: 0x1n, stream: 0xbn }),
    launch({ pid: pid + 1, func: 0x1n, stream: 0xan }),
    sync({ pid, api: CudaApi.cudaDeviceSynchronize, handle: 0n }),
    sync({ pid: pid + 1, api: CudaApi.cudaStreamSynchronize, handle: 0xan }),
  );
  const syncs = events.filter((e) => e.kind === 'cuda.sync');
  assert.deepEqual(
    syncs.map((e) => e.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT]),
    [2, 1],
  );
  assert.equal(syncs[0]?.attributes[A.ATTR_CAUSEWAY_CUDA_STREAM], undefined);
});

test('an event sync names its event and claims nothing about streams', async () => {
  const [event] = await pipeline()(sync({ pid, api: CudaApi.cudaEventSynchronize, handle: 0xe0n }));
  assert.equal(event?.attributes[A.ATTR_CAUSEWAY_CUDA_EVENT], '0xe0');
  assert.equal(event.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], undefined);
});

test('cudaFree reports the bytes its cudaMalloc allocated', async () => {
  const events = await pipeline()(
    malloc({ pid, api: CudaApi.cudaMalloc, ptr: 0x7f00n, bytes: 4096n, free: false }),
    malloc({ pid, api: CudaApi.cudaFree, ptr: 0x7f00n, bytes: 0n, free: true }),
    malloc({ pid, api: CudaApi.cudaFree, ptr: 0x7f00n, bytes: 0n, free: true }),
  );
  assert.deepEqual(
    events.map((e) => [e.attributes[A.ATTR_CAUSEWAY_CUDA_MALLOC_OP], e.attributes[A.ATTR_CAUSEWAY_CUDA_MALLOC_BYTES]]),
    [
      ['alloc', 4096],
      ['free', 4096],
      ['free', undefined],
    ],
  );
});

test('a futex wait names its waker, and a wait without one leaves the waker out', async () => {
  const F = LAYOUT.cw_futex.fields;
  const futex = (waker: { pid: number; tid: number; comm: string }) =>
    record({
      kind: Kind.FUTEX_WAIT,
      pid,
      body: (buf, u) => {
        buf.writeBigUInt64LE(0x7ffd10n, u + F.uaddr);
        writeTask(buf, u + F.waker, waker);
        buf.writeUInt32LE(128, u + F.op);
        buf.writeInt32LE(waker.pid === 0 ? -110 : 0, u + F.ret);
      },
    });
  const [woken, timedOut] = await pipeline()(
    futex({ pid: 7, tid: 9, comm: 'holder' }),
    futex({ pid: 0, tid: 0, comm: '' }),
  );
  assert.equal(woken?.kind, 'futex.wait');
  assert.equal(woken.attributes[A.ATTR_CAUSEWAY_FUTEX_WAKER_TID], 9);
  assert.equal(woken.attributes[A.ATTR_CAUSEWAY_FUTEX_WAKER_COMM], 'holder');
  assert.equal(woken.attributes[A.ATTR_CAUSEWAY_FUTEX_OP], 'FUTEX_WAIT_PRIVATE');
  assert.equal(woken.attributes[A.ATTR_CAUSEWAY_FUTEX_UADDR], '0x7ffd10');
  assert.equal(timedOut?.attributes[A.ATTR_CAUSEWAY_FUTEX_WAKER_TID], undefined);
  assert.equal(timedOut?.attributes[A.ATTR_CAUSEWAY_FUTEX_RESULT], -110);
});

test('scheduler events name the holder of the CPU and the waker', async () => {
  const R = LAYOUT.cw_runqueue.fields;
  const B = LAYOUT.cw_blocked.fields;
  const [runqueue, blocked] = await pipeline()(
    record({
      kind: Kind.SCHED_RUNQUEUE,
      pid,
      cpu: 3,
      body: (buf, u) => {
        writeTask(buf, u + R.holder, { pid: 50, tid: 51, comm: 'hog' });
        buf.writeUInt32LE(1, u + R.preempted);
      },
    }),
    record({
      kind: Kind.SCHED_BLOCKED,
      pid,
      cpu: 1,
      body: (buf, u) => {
        writeTask(buf, u + B.waker, { pid: 60, tid: 61, comm: 'irq' });
        buf.writeUInt32LE(2, u + B.state);
      },
    }),
  );
  assert.deepEqual(
    [
      runqueue?.attributes[A.ATTR_CAUSEWAY_SCHED_CPU],
      runqueue?.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDER_COMM],
      runqueue?.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDER_TID],
      runqueue?.attributes[A.ATTR_CAUSEWAY_SCHED_PREEMPTED],
    ],
    [3, 'hog', 51, true],
  );
  assert.deepEqual(
    [blocked?.attributes[A.ATTR_CAUSEWAY_SCHED_WAKER_TID], blocked?.attributes[A.ATTR_CAUSEWAY_SCHED_STATE]],
    [61, 'D'],
  );
});

test('a run-queue wait behind Causeway itself says so; one behind another task does not', async () => {
  const R = LAYOUT.cw_runqueue.fields;
  const behind = (holder: number) =>
    record({
      kind: Kind.SCHED_RUNQUEUE,
      pid,
      body: (buf, u) => {
        writeTask(buf, u + R.holder, { pid: holder, tid: holder + 1, comm: 'x' });
      },
    });
  const [self, other] = await pipeline()(behind(SELF_PID), behind(50));
  assert.equal(self?.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDER_CAUSEWAY], true);
  assert.equal(other?.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDER_CAUSEWAY], undefined);
});

test('block I/O names the device from sysfs and the op from rwbs', async () => {
  const K = LAYOUT.cw_block.fields;
  const io = (dev: number) =>
    record({
      kind: Kind.BLOCK_IO,
      pid,
      body: (buf, u) => {
        buf.writeBigUInt64LE(2048n, u + K.sector);
        buf.writeUInt32LE(dev, u + K.dev);
        buf.writeUInt32LE(65536, u + K.bytes);
        buf.write('FWS', u + K.rwbs);
        buf.writeUInt32LE(0, u + K.submitter);
      },
    });
  const [known, unknown] = await pipeline()(io((253 << 20) | 16), io((7 << 20) | 3));
  assert.equal(known?.attributes[A.ATTR_CAUSEWAY_BLOCK_DEVICE], 'vdb');
  assert.equal(known.attributes[A.ATTR_CAUSEWAY_BLOCK_OP], 'write');
  assert.equal(known.attributes[A.ATTR_CAUSEWAY_BLOCK_BYTES], 65536);
  assert.equal(known.attributes[A.ATTR_CAUSEWAY_BLOCK_ATTRIBUTION], 'issuer');
  assert.equal(unknown?.attributes[A.ATTR_CAUSEWAY_BLOCK_DEVICE], '7:3');
});

test('a TCP retransmit carries OpenTelemetry network attributes', async () => {
  const T = LAYOUT.cw_tcp.fields;
  const [event] = await pipeline()(
    record({
      kind: Kind.TCP_RETRANSMIT,
      pid,
      body: (buf, u) => {
        buf.set([127, 0, 0, 1], u + T.saddr);
        buf.set([127, 0, 0, 2], u + T.daddr);
        buf.writeUInt16LE(2, u + T.family);
        buf.writeUInt16LE(40000, u + T.sport);
        buf.writeUInt16LE(8080, u + T.dport);
        buf.writeUInt16LE(1, u + T.state);
        buf.writeUInt32LE(1, u + T.owner_known);
      },
    }),
  );
  assert.deepEqual(
    [
      A.ATTR_NETWORK_TYPE,
      A.ATTR_NETWORK_LOCAL_ADDRESS,
      A.ATTR_NETWORK_LOCAL_PORT,
      A.ATTR_NETWORK_PEER_ADDRESS,
      A.ATTR_NETWORK_PEER_PORT,
      A.ATTR_CAUSEWAY_TCP_STATE,
      A.ATTR_CAUSEWAY_TCP_OWNER_KNOWN,
    ].map((key) => event?.attributes[key]),
    ['ipv4', '127.0.0.1', 40000, '127.0.0.2', 8080, 'ESTABLISHED', true],
  );
});

test('an exec forgets the kernel names of the old program', async () => {
  const shape = pipeline();
  const events = await shape(
    register({ pid, func: 0x9n, name: 'old_kernel' }),
    record({ kind: Kind.PROC_EXEC, pid }),
    launch({ pid, api: CudaApi.cuLaunchKernel, func: 0x9n }),
  );
  assert.equal(events.length, 1);
  assert.equal(events[0]?.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL], undefined);
  assert.deepEqual(errors, []);
});
