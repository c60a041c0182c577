// Builds loader output for tests: records and frames laid out with the decoder's own
// offset table (itself checked against the C header by layout.test).
import { ABI_VERSION, API_PER_THREAD, CudaApi, FrameType, Kind, LAYOUT, RECORD_SIZE } from '../../src/kernel/record.js';

const E = LAYOUT.cw_event.fields;
const U = E.u;

export interface TaskSpec {
  pid: number;
  tid: number;
  comm: string;
}

export interface RecordSpec {
  kind: number;
  api?: number;
  /** The per-thread default stream variant (API_PER_THREAD). */
  perThread?: boolean;
  cpu?: number;
  pid?: number;
  tid?: number;
  comm?: string;
  startNs?: bigint;
  endNs?: bigint;
  /** Writes the union's bytes: gets the record buffer and the union's offset. */
  body?: (buf: Buffer, u: number) => void;
}

export function writeTask(buf: Buffer, at: number, task: TaskSpec): void {
  const T = LAYOUT.cw_task.fields;
  buf.writeUInt32LE(task.pid, at + T.pid);
  buf.writeUInt32LE(task.tid, at + T.tid);
  buf.write(task.comm, at + T.comm, 15, 'utf8');
}

export function record(spec: RecordSpec): Buffer {
  const buf = Buffer.alloc(RECORD_SIZE);
  buf.writeUInt16LE(spec.kind, E.kind);
  buf.writeUInt16LE((spec.api ?? 0) | (spec.perThread === true ? API_PER_THREAD : 0), E.api);
  buf.writeUInt32LE(spec.cpu ?? 0, E.cpu);
  buf.writeUInt32LE(spec.pid ?? 100, E.pid);
  buf.writeUInt32LE(spec.tid ?? spec.pid ?? 100, E.tid);
  buf.writeBigUInt64LE(spec.startNs ?? 1_000n, E.start_ns);
  buf.writeBigUInt64LE(spec.endNs ?? spec.startNs ?? 1_000n, E.end_ns);
  buf.write(spec.comm ?? 'app', E.comm, 15, 'utf8');
  spec.body?.(buf, U);
  return buf;
}

export function launch(
  spec: Omit<RecordSpec, 'kind' | 'body'> & {
    func: bigint;
    stream?: bigint;
    ret?: number;
    grid?: number[];
    block?: number[];
    device?: number;
  },
): Buffer {
  const L = LAYOUT.cw_launch.fields;
  return record({
    ...spec,
    kind: Kind.CUDA_LAUNCH,
    body: (buf, u) => {
      buf.writeBigUInt64LE(spec.func, u + L.func);
      buf.writeBigUInt64LE(spec.stream ?? 0n, u + L.stream);
      buf.writeBigUInt64LE(128n, u + L.shared_mem);
      (spec.grid ?? [1, 1, 1]).forEach((v, i) => buf.writeUInt32LE(v, u + L.grid + 4 * i));
      (spec.block ?? [1, 1, 1]).forEach((v, i) => buf.writeUInt32LE(v, u + L.block + 4 * i));
      buf.writeInt32LE(spec.ret ?? 0, u + L.ret);
      buf.writeInt32LE(spec.device ?? 0, u + L.device);
    },
  });
}

/** A launch summary (in-kernel reduction): funcs with their counts, which add up to the count. */
export function launches(
  spec: Omit<RecordSpec, 'kind' | 'body'> & {
    funcs: { func: bigint; count: number }[];
    stream?: bigint;
    device?: number;
    callNs?: bigint;
  },
): Buffer {
  const L = LAYOUT.cw_launches.fields;
  const F = LAYOUT.cw_func_count;
  return record({
    api: CudaApi.cudaLaunchKernel,
    ...spec,
    kind: Kind.CUDA_LAUNCHES,
    body: (buf, u) => {
      buf.writeBigUInt64LE(spec.stream ?? 0n, u + L.stream);
      buf.writeBigUInt64LE(spec.callNs ?? 0n, u + L.call_ns);
      buf.writeBigUInt64LE(spec.callNs ?? 0n, u + L.max_call_ns);
      buf.writeUInt32LE(
        spec.funcs.reduce((sum, f) => sum + f.count, 0),
        u + L.count,
      );
      buf.writeInt32LE(spec.device ?? 0, u + L.device);
      spec.funcs.forEach((f, i) => {
        buf.writeBigUInt64LE(f.func, u + L.funcs + i * F.size + F.fields.func);
        buf.writeUInt32LE(f.count, u + L.funcs + i * F.size + F.fields.count);
      });
    },
  });
}

/** A summary of waits (in-kernel reduction): kind SCHED_RUNQUEUE_SUM, SCHED_BLOCKED_SUM or FUTEX_WAIT_SUM. */
export function waitSum(
  spec: Omit<RecordSpec, 'body'> & {
    count: number;
    waitNs: bigint;
    maxNs: bigint;
    preempted?: number;
    waker?: TaskSpec;
  },
): Buffer {
  const W = LAYOUT.cw_wait_sum.fields;
  return record({
    ...spec,
    body: (buf, u) => {
      buf.writeBigUInt64LE(spec.waitNs, u + W.wait_ns);
      buf.writeBigUInt64LE(spec.maxNs, u + W.max_ns);
      buf.writeUInt32LE(spec.count, u + W.count);
      buf.writeUInt32LE(spec.preempted ?? 0, u + W.preempted);
      if (spec.waker !== undefined) writeTask(buf, u + W.waker, spec.waker);
    },
  });
}

/** A registration, or with `more`, the next part of a name too long for one (as the loader writes it). */
export function register(
  spec: Omit<RecordSpec, 'kind' | 'body'> & { func: bigint; name: string; nameAddr?: bigint; more?: boolean },
): Buffer {
  const R = LAYOUT.cw_register.fields;
  return record({
    ...spec,
    api: spec.api ?? CudaApi.__cudaRegisterFunction,
    kind: spec.more === true ? Kind.CUDA_NAME_MORE : Kind.CUDA_REGISTER,
    body: (buf, u) => {
      buf.writeBigUInt64LE(spec.func, u + R.func);
      buf.write(spec.name, u + R.name, 95, 'utf8');
      buf.writeBigUInt64LE(spec.nameAddr ?? 0n, u + R.name_addr);
    },
  });
}

export function sync(
  spec: Omit<RecordSpec, 'kind' | 'body'> & { handle: bigint; ret?: number; device?: number; polls?: number },
): Buffer {
  const S = LAYOUT.cw_sync.fields;
  return record({
    ...spec,
    kind: Kind.CUDA_SYNC,
    body: (buf, u) => {
      buf.writeBigUInt64LE(spec.handle, u + S.handle);
      buf.writeInt32LE(spec.ret ?? 0, u + S.ret);
      buf.writeInt32LE(spec.device ?? 0, u + S.device);
      buf.writeUInt32LE(spec.polls ?? 0, u + S.polls);
    },
  });
}

/** A CUDA_OP record: capture, instantiation, event record or stream wait (by api). */
export function op(
  spec: Omit<RecordSpec, 'kind' | 'body'> & {
    stream?: bigint;
    event?: bigint;
    graph?: bigint;
    exec?: bigint;
    ret?: number;
    device?: number;
  },
): Buffer {
  const O = LAYOUT.cw_cuda_op.fields;
  return record({
    ...spec,
    kind: Kind.CUDA_OP,
    body: (buf, u) => {
      buf.writeBigUInt64LE(spec.stream ?? 0n, u + O.stream);
      buf.writeBigUInt64LE(spec.event ?? 0n, u + O.event);
      buf.writeBigUInt64LE(spec.graph ?? 0n, u + O.graph);
      buf.writeBigUInt64LE(spec.exec ?? 0n, u + O.exec);
      buf.writeInt32LE(spec.ret ?? 0, u + O.ret);
      buf.writeInt32LE(spec.device ?? 0, u + O.device);
    },
  });
}

export function malloc(
  spec: Omit<RecordSpec, 'kind' | 'body'> & { ptr: bigint; bytes: bigint; free: boolean },
): Buffer {
  const M = LAYOUT.cw_malloc.fields;
  return record({
    ...spec,
    kind: Kind.CUDA_MALLOC,
    body: (buf, u) => {
      buf.writeBigUInt64LE(spec.ptr, u + M.ptr);
      buf.writeBigUInt64LE(spec.bytes, u + M.bytes);
      buf.writeUInt32LE(spec.free ? 1 : 0, u + M.free);
    },
  });
}

/** A run-queue wait and the tasks that held its CPU meanwhile, most on-CPU time first. */
export function runqueue(
  spec: Omit<RecordSpec, 'kind' | 'body'> & {
    holders: (TaskSpec & { oncpuNs: bigint })[];
    seenNs?: bigint;
    preempted?: boolean;
  },
): Buffer {
  const R = LAYOUT.cw_runqueue.fields;
  const H = LAYOUT.cw_holder;
  return record({
    ...spec,
    kind: Kind.SCHED_RUNQUEUE,
    body: (buf, u) => {
      spec.holders.forEach((holder, i) => {
        writeTask(buf, u + R.holders + i * H.size + H.fields.task, holder);
        buf.writeBigUInt64LE(holder.oncpuNs, u + R.holders + i * H.size + H.fields.oncpu_ns);
      });
      buf.writeBigUInt64LE(spec.seenNs ?? spec.holders.reduce((sum, h) => sum + h.oncpuNs, 0n), u + R.seen_ns);
      buf.writeUInt32LE(spec.preempted === true ? 1 : 0, u + R.preempted);
    },
  });
}

/** Causeway's loader in crowdedWait(): a test that shapes it says this pid is Causeway's own. */
export const LOADER_PID = 4242;

/**
 * A 10 ms run-queue wait from `startNs` (default 0): hog (50/51) held the CPU 6 ms of it, spin
 * (70/72) 1.5 ms, Causeway's loader 0.4 ms; the run history saw its last 8.5 ms, so 0.6 ms seen
 * was held by no listed task and its first 1.5 ms were not seen.
 */
export function crowdedWait(spec: Omit<RecordSpec, 'kind' | 'body' | 'endNs'> & { preempted?: boolean }): Buffer {
  const start = spec.startNs ?? 0n;
  return runqueue({
    ...spec,
    startNs: start,
    endNs: start + 10_000_000n,
    holders: [
      { pid: 50, tid: 51, comm: 'hog', oncpuNs: 6_000_000n },
      { pid: 70, tid: 72, comm: 'spin', oncpuNs: 1_500_000n },
      { pid: LOADER_PID, tid: LOADER_PID, comm: 'causeway-loader', oncpuNs: 400_000n },
    ],
    seenNs: 8_500_000n,
  });
}

export function frame(type: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(LAYOUT.cw_frame.size);
  header.writeUInt32LE(type, LAYOUT.cw_frame.fields.type);
  header.writeUInt32LE(payload.length, LAYOUT.cw_frame.fields.size);
  return Buffer.concat([header, payload]);
}

export function hello(spec: { abiVersion?: number; eventSize?: number } = {}): Buffer {
  const H = LAYOUT.cw_hello;
  const buf = Buffer.alloc(H.size);
  buf.writeUInt32LE(spec.abiVersion ?? ABI_VERSION, H.fields.abi_version);
  buf.writeUInt32LE(spec.eventSize ?? RECORD_SIZE, H.fields.event_size);
  buf.writeUInt32LE(1 << 24, H.fields.ringbuf_bytes);
  buf.writeUInt32LE(2, H.fields.ncpus);
  return frame(FrameType.HELLO, buf);
}

export function stats(spec: {
  monoNs: bigint;
  realNs: bigint;
  drops?: Record<number, number>;
  shed?: Record<number, number>;
  events?: Record<number, number>;
  unnamedKernels?: number;
  threadContext?: { processes: number; unresolved: number };
}): Buffer {
  const S = LAYOUT.cw_stats;
  const buf = Buffer.alloc(S.size);
  buf.writeBigUInt64LE(spec.monoNs, S.fields.mono_ns);
  buf.writeBigUInt64LE(spec.realNs, S.fields.real_ns);
  for (const [kind, n] of Object.entries(spec.drops ?? {}))
    buf.writeBigUInt64LE(BigInt(n), S.fields.drops + 8 * Number(kind));
  for (const [kind, n] of Object.entries(spec.shed ?? {}))
    buf.writeBigUInt64LE(BigInt(n), S.fields.shed + 8 * Number(kind));
  for (const [kind, n] of Object.entries(spec.events ?? {}))
    buf.writeBigUInt64LE(BigInt(n), S.fields.events + 8 * Number(kind));
  buf.writeUInt32LE(spec.unnamedKernels ?? 0, S.fields.unnamed_kernels);
  buf.writeUInt32LE(spec.threadContext?.processes ?? 0, S.fields.thread_ctx_processes);
  buf.writeUInt32LE(spec.threadContext?.unresolved ?? 0, S.fields.thread_ctx_unresolved);
  return frame(FrameType.STATS, buf);
}

export function watermark(monoNs: bigint): Buffer {
  const W = LAYOUT.cw_watermark;
  const buf = Buffer.alloc(W.size);
  buf.writeBigUInt64LE(monoNs, W.fields.mono_ns);
  return frame(FrameType.WATERMARK, buf);
}

export function message(object: Record<string, unknown>): Buffer {
  return frame(FrameType.MESSAGE, Buffer.from(JSON.stringify(object)));
}
