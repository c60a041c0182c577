// Decodes the loader's fixed-layout records (struct cw_event in bpf/causeway.h) with
// DataView reads at fixed offsets: no per-event parsing beyond this.
// test/kernel/layout.c prints the C compiler's view of every struct and enum below,
// and the layout test checks this file against it.

export const ABI_VERSION = 11;
export const COMM_LEN = 16;
export const NAME_LEN = 96;
/** Holders a run-queue record names at most (CW_RUNQUEUE_HOLDERS). */
export const RUNQUEUE_HOLDERS = 3;
/** Or'ed into a record's api: the per-thread default stream variant (`_ptsz`, `_ptds`) was called. */
export const API_PER_THREAD = 0x8000;
/** A record's device when the thread chose its device before the probes were attached. */
export const DEVICE_UNKNOWN = -1;
/** Distinct functions a launch summary names at most (CW_LAUNCH_FUNCS): a sixth closes its window. */
export const LAUNCH_FUNCS = 5;
/** A message's family when it went through a pipe (or FIFO), which has no address family (CW_MESSAGE_PIPE). */
export const MESSAGE_PIPE = 0xffff;

/**
 * Every struct of causeway.h: its size and each field's byte offset. cw_settings is only
 * written by the loader, never decoded here: it is listed so a change to it shows in the layout
 * test like any other change to the ABI.
 */
export const LAYOUT = {
  cw_event: {
    size: 184,
    fields: { kind: 0, api: 2, cpu: 4, pid: 8, tid: 12, start_ns: 16, end_ns: 24, comm: 32, context: 48, u: 72 },
  },
  cw_task: { size: 24, fields: { pid: 0, tid: 4, comm: 8 } },
  cw_launch: { size: 56, fields: { func: 0, stream: 8, shared_mem: 16, grid: 24, block: 36, ret: 48, device: 52 } },
  cw_sync: { size: 24, fields: { handle: 0, ret: 8, device: 12, polls: 16 } },
  cw_memcpy: { size: 32, fields: { bytes: 0, stream: 8, direction: 16, async: 20, ret: 24, device: 28 } },
  cw_malloc: { size: 32, fields: { ptr: 0, bytes: 8, free: 16, ret: 20, device: 24 } },
  cw_cuda_op: { size: 40, fields: { stream: 0, event: 8, graph: 16, exec: 24, ret: 32, device: 36 } },
  cw_holder: { size: 32, fields: { task: 0, oncpu_ns: 24 } },
  cw_runqueue: { size: 112, fields: { holders: 0, seen_ns: 96, preempted: 104 } },
  cw_blocked: { size: 28, fields: { waker: 0, state: 24 } },
  cw_futex: { size: 40, fields: { uaddr: 0, waker: 8, op: 32, ret: 36 } },
  cw_block: { size: 32, fields: { sector: 0, dev: 8, bytes: 12, rwbs: 16, error: 24, submitter: 28 } },
  cw_tcp: { size: 44, fields: { saddr: 0, daddr: 16, family: 32, sport: 34, dport: 36, state: 38, owner_known: 40 } },
  cw_register: { size: 112, fields: { func: 0, name: 8, name_addr: 104 } },
  cw_exec: { size: 4, fields: { ppid: 0 } },
  cw_mapped: { size: 16, fields: { ino: 0, dev: 8 } },
  cw_span_context: { size: 24, fields: { trace_id: 0, span_id: 16 } },
  cw_otel_thread_ctx_record: { size: 25, fields: { ids: 0, valid: 24 } },
  cw_message: { size: 24, fields: { ends: 0, bytes: 16, family: 20, send: 22 } },
  cw_func_count: { size: 16, fields: { func: 0, count: 8 } },
  cw_launches: {
    size: 112,
    fields: { stream: 0, call_ns: 8, max_call_ns: 16, count: 24, device: 28, funcs: 32 },
  },
  cw_wait_sum: { size: 48, fields: { wait_ns: 0, max_ns: 8, count: 16, preempted: 20, waker: 24 } },
  cw_settings: {
    size: 232,
    fields: {
      min_ns: 0,
      window_ns: 176,
      launch_whole_ns: 184,
      runqueue_whole_ns: 192,
      wait_whole_ns: 200,
      follow_all: 208,
      exclude: 212,
      shed: 220,
      obi_traces_ctx: 224,
      thread_ctx: 228,
    },
  },
  cw_frame: { size: 8, fields: { type: 0, size: 4 } },
  cw_hello: { size: 16, fields: { abi_version: 0, event_size: 4, ringbuf_bytes: 8, ncpus: 12 } },
  cw_stats: {
    size: 576,
    fields: {
      mono_ns: 0,
      real_ns: 8,
      drops: 16,
      shed: 192,
      events: 368,
      ringbuf_used: 544,
      followed: 552,
      libraries: 556,
      gpu_processes: 560,
      unnamed_kernels: 564,
      thread_ctx_processes: 568,
      thread_ctx_unresolved: 572,
    },
  },
  cw_watermark: { size: 8, fields: { mono_ns: 0 } },
} as const;

/** enum cw_kind. */
export const Kind = {
  CUDA_LAUNCH: 1,
  CUDA_SYNC: 2,
  CUDA_MEMCPY: 3,
  CUDA_MALLOC: 4,
  SCHED_RUNQUEUE: 5,
  SCHED_BLOCKED: 6,
  FUTEX_WAIT: 7,
  BLOCK_IO: 8,
  TCP_RETRANSMIT: 9,
  CUDA_REGISTER: 10,
  PROC_EXEC: 11,
  CUDA_OP: 12,
  CUDA_MAPPED: 13,
  PROC_EXIT: 14,
  IPC_MESSAGE: 15,
  CUDA_LAUNCHES: 16,
  SCHED_RUNQUEUE_SUM: 17,
  CODE_MAPPED: 18,
  SCHED_BLOCKED_SUM: 19,
  FUTEX_WAIT_SUM: 20,
  CUDA_NAME_MORE: 21,
  MAX: 22,
} as const;

/**
 * enum cw_cuda_api, named as the CUDA functions without their ABI suffix (cuMemcpyHtoD for
 * cuMemcpyHtoD_v2) or per-thread suffix (API_PER_THREAD says that); one name may stand for a
 * family (cudaGraphInstantiate for its WithFlags and WithParams forms).
 */
export const CudaApi = {
  cudaLaunchKernel: 1,
  cudaLaunchKernelExC: 2,
  cuLaunchKernel: 3,
  cuLaunchKernelEx: 4,
  cudaGraphLaunch: 5,
  cuGraphLaunch: 6,
  cudaStreamSynchronize: 7,
  cudaDeviceSynchronize: 8,
  cudaEventSynchronize: 9,
  cuCtxSynchronize: 10,
  cuStreamSynchronize: 11,
  cuEventSynchronize: 12,
  cudaEventQuery: 13,
  cudaStreamQuery: 14,
  cuEventQuery: 15,
  cuStreamQuery: 16,
  cudaMemcpy: 17,
  cudaMemcpyAsync: 18,
  cuMemcpy: 19,
  cuMemcpyAsync: 20,
  cuMemcpyHtoD: 21,
  cuMemcpyDtoH: 22,
  cuMemcpyDtoD: 23,
  cuMemcpyHtoDAsync: 24,
  cuMemcpyDtoHAsync: 25,
  cudaMalloc: 26,
  cudaFree: 27,
  __cudaRegisterFunction: 28,
  cuModuleGetFunction: 29,
  cudaStreamBeginCapture: 30,
  cudaStreamEndCapture: 31,
  cudaGraphInstantiate: 32,
  cuStreamBeginCapture: 33,
  cuStreamEndCapture: 34,
  cuGraphInstantiate: 35,
  cudaEventRecord: 36,
  cudaStreamWaitEvent: 37,
  cuEventRecord: 38,
  cuStreamWaitEvent: 39,
  cudaSetDevice: 40,
  cuCtxCreate: 41,
  cuCtxSetCurrent: 42,
  cuDevicePrimaryCtxRetain: 43,
  cudaGetKernel: 44,
  MAX: 45,
} as const;

/** enum cw_gpu_process: how a process became known as a GPU user. */
export const GpuProcess = { FOUND_RUNNING: 1, SEEN_STARTING: 2 } as const;

/** enum cw_memcpy_direction: cudaMemcpyKind's values. */
export const MemcpyDirection = { HTOH: 0, HTOD: 1, DTOH: 2, DTOD: 3, DEFAULT: 4 } as const;

/** enum cw_frame_type. */
export const FrameType = { HELLO: 1, EVENTS: 2, STATS: 3, MESSAGE: 4, CONTEXT: 5, WATERMARK: 6 } as const;

const apiNames = new Map<number, string>(Object.entries(CudaApi).map(([name, value]) => [value, name]));
/** Entry points whose per-thread variant ends in `_ptds` (no stream argument); the others' end in `_ptsz`. */
const PTDS = new Set<number>([
  CudaApi.cudaMemcpy,
  CudaApi.cuMemcpy,
  CudaApi.cuMemcpyHtoD,
  CudaApi.cuMemcpyDtoH,
  CudaApi.cuMemcpyDtoD,
]);

/** The CUDA function a record's api and perThread name, or `api(N)` for a value this build does not know. */
export function cudaApiName(api: number, perThread = false): string {
  const name = apiNames.get(api);
  if (name === undefined) return `api(${api})`;
  return perThread ? `${name}${PTDS.has(api) ? '_ptds' : '_ptsz'}` : name;
}

export interface Task {
  pid: number;
  tid: number;
  comm: string;
}

interface Header {
  /** enum cw_cuda_api for CUDA records, without API_PER_THREAD; 0 otherwise. */
  api: number;
  /** The per-thread default stream variant was called: its stream 0 is the thread's own. */
  perThread: boolean;
  cpu: number;
  pid: number;
  tid: number;
  startNs: bigint;
  endNs: bigint;
  comm: string;
  /** The app span active on the task when the event began (its OTEP 4947 thread context), if read. */
  spanContext: SpanContextStamp | undefined;
}

/** Trace and span ids, lowercase hex, as OTLP spans carry them. */
export interface SpanContextStamp {
  traceId: string;
  spanId: string;
}

/** device is DEVICE_UNKNOWN when the thread chose its device before the probes were attached. */
export interface Launch {
  /** The host stub, the CUfunction, or for a graph launch the executable graph. */
  func: bigint;
  stream: bigint;
  sharedMem: bigint;
  grid: number[];
  block: number[];
  ret: number;
  device: number;
}
export interface Sync {
  handle: bigint;
  ret: number;
  device: number;
  /** 0 for a blocking sync; else the queries of a polling wait, the first not-ready one to done. */
  polls: number;
}
export interface Memcpy {
  bytes: bigint;
  stream: bigint;
  direction: number;
  async: boolean;
  ret: number;
  device: number;
}
export interface Malloc {
  ptr: bigint;
  bytes: bigint;
  free: boolean;
  ret: number;
  device: number;
}
/** Graph capture and instantiation, event record, stream wait: what the in-flight bookkeeping needs. */
export interface CudaOp {
  stream: bigint;
  event: bigint;
  graph: bigint;
  exec: bigint;
  ret: number;
  device: number;
}
/** A task that held the cpu during a run-queue wait, and its on-cpu time within the wait. */
export interface Holder extends Task {
  oncpuNs: bigint;
}
export interface Runqueue {
  /** Most on-cpu time first; empty when no task but the idle one ran there meanwhile. */
  holders: Holder[];
  /** The part of the wait the cpu's run history covers. */
  seenNs: bigint;
  preempted: boolean;
}
export interface Blocked {
  waker: Task;
  state: number;
}
export interface Futex {
  uaddr: bigint;
  waker: Task;
  op: number;
  ret: number;
}
export interface BlockIo {
  sector: bigint;
  dev: number;
  bytes: number;
  rwbs: string;
  error: number;
  submitter: boolean;
}
export interface Tcp {
  family: number;
  saddr: Uint8Array;
  daddr: Uint8Array;
  sport: number;
  dport: number;
  state: number;
  ownerKnown: boolean;
}
export interface Register {
  func: bigint;
  name: string;
}
export interface Exec {
  ppid: number;
}
/** A send or receive on a socket, or a write or read on a pipe; `ends` is the connection, the same at both ends. */
export interface Message {
  ends: readonly [bigint, bigint];
  bytes: number;
  family: number;
  send: boolean;
}

/** A thread's quick, successful launches in one window (in-kernel reduction), on one stream and device. */
export interface Launches {
  stream: bigint;
  /** Time inside the launch calls, summed, and the longest. */
  callNs: bigint;
  maxCallNs: bigint;
  count: number;
  device: number;
  /** Every function launched, with its count, in first-launch order; the counts add up to `count`. */
  funcs: { func: bigint; count: number }[];
}
/** A thread's short waits of one kind (run-queue, blocked, futex) in one window, summed (in-kernel reduction). */
export interface WaitSum {
  waitNs: bigint;
  maxNs: bigint;
  count: number;
  /** Run-queue waits: how many began with a preemption (the others with a wakeup); 0 for the others. */
  preempted: number;
}

/** The summaries of waits, all of one layout (struct cw_wait_sum). */
export type WaitSumKind = typeof Kind.SCHED_RUNQUEUE_SUM | typeof Kind.SCHED_BLOCKED_SUM | typeof Kind.FUTEX_WAIT_SUM;

export type KernelRecord = Header &
  (
    | { kind: typeof Kind.CUDA_LAUNCH; launch: Launch }
    | { kind: typeof Kind.CUDA_SYNC; sync: Sync }
    | { kind: typeof Kind.CUDA_MEMCPY; memcpy: Memcpy }
    | { kind: typeof Kind.CUDA_MALLOC; malloc: Malloc }
    | { kind: typeof Kind.SCHED_RUNQUEUE; runqueue: Runqueue }
    | { kind: typeof Kind.SCHED_BLOCKED; blocked: Blocked }
    | { kind: typeof Kind.FUTEX_WAIT; futex: Futex }
    | { kind: typeof Kind.BLOCK_IO; block: BlockIo }
    | { kind: typeof Kind.TCP_RETRANSMIT; tcp: Tcp }
    | { kind: typeof Kind.CUDA_REGISTER; register: Register }
    | { kind: typeof Kind.CUDA_NAME_MORE; register: Register }
    | { kind: typeof Kind.PROC_EXEC; exec: Exec }
    | { kind: typeof Kind.CUDA_OP; op: CudaOp }
    | { kind: typeof Kind.CUDA_MAPPED }
    | { kind: typeof Kind.PROC_EXIT }
    | { kind: typeof Kind.IPC_MESSAGE; message: Message }
    | { kind: typeof Kind.CUDA_LAUNCHES; launches: Launches }
    | { kind: WaitSumKind; waitSum: WaitSum }
  );

export const RECORD_SIZE = LAYOUT.cw_event.size;

const E = LAYOUT.cw_event.fields;
const U = E.u;
const T = LAYOUT.cw_task.fields;
const L = LAYOUT.cw_launch.fields;
const SY = LAYOUT.cw_sync.fields;
const MC = LAYOUT.cw_memcpy.fields;
const MA = LAYOUT.cw_malloc.fields;
const RQ = LAYOUT.cw_runqueue.fields;
const HO = LAYOUT.cw_holder;
const BL = LAYOUT.cw_blocked.fields;
const FX = LAYOUT.cw_futex.fields;
const BK = LAYOUT.cw_block.fields;
const TC = LAYOUT.cw_tcp.fields;
const RG = LAYOUT.cw_register.fields;
const EX = LAYOUT.cw_exec.fields;
const OP = LAYOUT.cw_cuda_op.fields;
const MS = LAYOUT.cw_message.fields;
const LS = LAYOUT.cw_launches.fields;
const FC = LAYOUT.cw_func_count;
const WS = LAYOUT.cw_wait_sum.fields;

/** The functions a launch summary names: the list ends at the first with func 0. */
function funcCounts(view: DataView, at: number): { func: bigint; count: number }[] {
  const list: { func: bigint; count: number }[] = [];
  for (let i = 0; i < LAUNCH_FUNCS; i++) {
    const f = at + i * FC.size;
    const func = view.getBigUint64(f + FC.fields.func, true);
    if (func === 0n) break;
    list.push({ func, count: view.getUint32(f + FC.fields.count, true) });
  }
  return list;
}

/** A NUL-terminated C string of at most `max` bytes. */
function cString(buf: Buffer, at: number, max: number): string {
  const nul = buf.indexOf(0, at);
  const end = nul === -1 || nul > at + max ? at + max : nul;
  return buf.toString('utf8', at, end);
}

/**
 * Task names as decoded before, by their 16 bytes: nearly every record names a thread seen
 * just before, and one string per name (not one per record) is made and held.
 */
class Comms {
  private static readonly SLOTS = 1024;
  /** Each slot's four 32-bit words of the name, then its string. */
  private readonly words = new Uint32Array(Comms.SLOTS * 4);
  private readonly strings: (string | undefined)[] = new Array<string | undefined>(Comms.SLOTS).fill(undefined);

  get(buf: Buffer, view: DataView, at: number): string {
    const w0 = view.getUint32(at, true);
    const w1 = view.getUint32(at + 4, true);
    const w2 = view.getUint32(at + 8, true);
    const w3 = view.getUint32(at + 12, true);
    const slot =
      (Math.imul(w0 ^ Math.imul(w1, 31) ^ Math.imul(w2, 961) ^ Math.imul(w3, 29791), 0x9e3779b1) >>> 22) &
      (Comms.SLOTS - 1);
    const known = this.strings[slot];
    const w = slot * 4;
    const { words } = this;
    if (known !== undefined && words[w] === w0 && words[w + 1] === w1 && words[w + 2] === w2 && words[w + 3] === w3)
      return known;
    const comm = cString(buf, at, COMM_LEN);
    words[w] = w0;
    words[w + 1] = w1;
    words[w + 2] = w2;
    words[w + 3] = w3;
    this.strings[slot] = comm;
    return comm;
  }
}
const comms = new Comms();

function task(buf: Buffer, view: DataView, at: number): Task {
  return {
    pid: view.getUint32(at + T.pid, true),
    tid: view.getUint32(at + T.tid, true),
    comm: comms.get(buf, view, at + T.comm),
  };
}

/**
 * Where in a batch the other task record `r` names is, read from its bytes alone: the top holder
 * of a run-queue wait, the waker of a blocking, or of a futex wait that was woken (pid 0: it was
 * not); of a summary of such waits, its longest one's. Undefined when it names none.
 */
function otherTaskOffset(view: DataView, r: number): number | undefined {
  const u = r + U;
  switch (kindAt(view, r)) {
    case Kind.SCHED_RUNQUEUE: {
      const top = u + RQ.holders + HO.fields.task;
      return view.getUint32(top + T.tid, true) === 0 ? undefined : top;
    }
    case Kind.SCHED_BLOCKED:
      return u + BL.waker;
    case Kind.FUTEX_WAIT:
      return view.getUint32(u + FX.waker + T.pid, true) === 0 ? undefined : u + FX.waker;
    // A summary of blocked or futex waits names its longest wait's waker, as that wait's own record would.
    case Kind.SCHED_BLOCKED_SUM:
      return u + WS.waker;
    case Kind.FUTEX_WAIT_SUM:
      return view.getUint32(u + WS.waker + T.pid, true) === 0 ? undefined : u + WS.waker;
    default:
      return undefined;
  }
}

/** The other task record `r` of a batch names (otherTaskOffset). */
export function otherTaskAt(buf: Buffer, view: DataView, r: number): Task | undefined {
  const at = otherTaskOffset(view, r);
  return at === undefined ? undefined : task(buf, view, at);
}

/** The pid of the other task record `r` of a batch names (otherTaskOffset), with no task made. */
export function otherPidAt(view: DataView, r: number): number | undefined {
  const at = otherTaskOffset(view, r);
  return at === undefined ? undefined : view.getUint32(at + T.pid, true);
}

function dim3(view: DataView, at: number): number[] {
  return [view.getUint32(at, true), view.getUint32(at + 4, true), view.getUint32(at + 8, true)];
}

/** The CUDA calls' records. */
function cudaBody(
  kind:
    | typeof Kind.CUDA_LAUNCH
    | typeof Kind.CUDA_SYNC
    | typeof Kind.CUDA_MEMCPY
    | typeof Kind.CUDA_MALLOC
    | typeof Kind.CUDA_OP,
  view: DataView,
  u: number,
) {
  switch (kind) {
    case Kind.CUDA_LAUNCH:
      return {
        kind,
        launch: {
          func: view.getBigUint64(u + L.func, true),
          stream: view.getBigUint64(u + L.stream, true),
          sharedMem: view.getBigUint64(u + L.shared_mem, true),
          grid: dim3(view, u + L.grid),
          block: dim3(view, u + L.block),
          ret: view.getInt32(u + L.ret, true),
          device: view.getInt32(u + L.device, true),
        },
      } as const;
    case Kind.CUDA_SYNC:
      return {
        kind,
        sync: {
          handle: view.getBigUint64(u + SY.handle, true),
          ret: view.getInt32(u + SY.ret, true),
          device: view.getInt32(u + SY.device, true),
          polls: view.getUint32(u + SY.polls, true),
        },
      } as const;
    case Kind.CUDA_MEMCPY:
      return {
        kind,
        memcpy: {
          bytes: view.getBigUint64(u + MC.bytes, true),
          stream: view.getBigUint64(u + MC.stream, true),
          direction: view.getUint32(u + MC.direction, true),
          async: view.getUint32(u + MC.async, true) !== 0,
          ret: view.getInt32(u + MC.ret, true),
          device: view.getInt32(u + MC.device, true),
        },
      } as const;
    case Kind.CUDA_MALLOC:
      return {
        kind,
        malloc: {
          ptr: view.getBigUint64(u + MA.ptr, true),
          bytes: view.getBigUint64(u + MA.bytes, true),
          free: view.getUint32(u + MA.free, true) !== 0,
          ret: view.getInt32(u + MA.ret, true),
          device: view.getInt32(u + MA.device, true),
        },
      } as const;
    default:
      return {
        kind,
        op: {
          stream: view.getBigUint64(u + OP.stream, true),
          event: view.getBigUint64(u + OP.event, true),
          graph: view.getBigUint64(u + OP.graph, true),
          exec: view.getBigUint64(u + OP.exec, true),
          ret: view.getInt32(u + OP.ret, true),
          device: view.getInt32(u + OP.device, true),
        },
      } as const;
  }
}

/** The holders written out: the list ends at the first with tid 0. */
function holders(buf: Buffer, view: DataView, at: number): Holder[] {
  const list: Holder[] = [];
  for (let i = 0; i < RUNQUEUE_HOLDERS; i++) {
    const h = at + i * HO.size;
    const t = h + HO.fields.task;
    const tid = view.getUint32(t + T.tid, true);
    if (tid === 0) break;
    list.push({
      pid: view.getUint32(t + T.pid, true),
      tid,
      comm: comms.get(buf, view, t + T.comm),
      oncpuNs: view.getBigUint64(h + HO.fields.oncpu_ns, true),
    });
  }
  return list;
}

function runqueue(buf: Buffer, view: DataView, u: number) {
  return {
    holders: holders(buf, view, u + RQ.holders),
    seenNs: view.getBigUint64(u + RQ.seen_ns, true),
    preempted: view.getUint32(u + RQ.preempted, true) !== 0,
  };
}

/** The in-kernel reduction's summaries. */
function summaryBody(kind: typeof Kind.CUDA_LAUNCHES | WaitSumKind, view: DataView, u: number) {
  switch (kind) {
    case Kind.CUDA_LAUNCHES:
      return {
        kind,
        launches: {
          stream: view.getBigUint64(u + LS.stream, true),
          callNs: view.getBigUint64(u + LS.call_ns, true),
          maxCallNs: view.getBigUint64(u + LS.max_call_ns, true),
          count: view.getUint32(u + LS.count, true),
          device: view.getInt32(u + LS.device, true),
          funcs: funcCounts(view, u + LS.funcs),
        },
      } as const;
    default:
      return {
        kind,
        waitSum: {
          waitNs: view.getBigUint64(u + WS.wait_ns, true),
          maxNs: view.getBigUint64(u + WS.max_ns, true),
          count: view.getUint32(u + WS.count, true),
          preempted: view.getUint32(u + WS.preempted, true),
        },
      } as const;
  }
}

const registration = (buf: Buffer, view: DataView, u: number): Register => ({
  func: view.getBigUint64(u + RG.func, true),
  name: cString(buf, u + RG.name, NAME_LEN),
});

function body(kind: number, buf: Buffer, view: DataView, r: number, index: number) {
  const u = r + U;
  switch (kind) {
    case Kind.CUDA_LAUNCH:
    case Kind.CUDA_SYNC:
    case Kind.CUDA_MEMCPY:
    case Kind.CUDA_MALLOC:
    case Kind.CUDA_OP:
      return cudaBody(kind, view, u);
    case Kind.SCHED_RUNQUEUE:
      return { kind, runqueue: runqueue(buf, view, u) } as const;
    case Kind.SCHED_BLOCKED:
      return {
        kind,
        blocked: { waker: task(buf, view, u + BL.waker), state: view.getUint32(u + BL.state, true) },
      } as const;
    case Kind.FUTEX_WAIT:
      return {
        kind,
        futex: {
          uaddr: view.getBigUint64(u + FX.uaddr, true),
          waker: task(buf, view, u + FX.waker),
          op: view.getUint32(u + FX.op, true),
          ret: view.getInt32(u + FX.ret, true),
        },
      } as const;
    case Kind.BLOCK_IO:
      return {
        kind,
        block: {
          sector: view.getBigUint64(u + BK.sector, true),
          dev: view.getUint32(u + BK.dev, true),
          bytes: view.getUint32(u + BK.bytes, true),
          rwbs: cString(buf, u + BK.rwbs, 8),
          error: view.getInt32(u + BK.error, true),
          submitter: view.getUint32(u + BK.submitter, true) !== 0,
        },
      } as const;
    case Kind.TCP_RETRANSMIT:
      return {
        kind,
        tcp: {
          family: view.getUint16(u + TC.family, true),
          saddr: Uint8Array.from(buf.subarray(u + TC.saddr, u + TC.saddr + 16)),
          daddr: Uint8Array.from(buf.subarray(u + TC.daddr, u + TC.daddr + 16)),
          sport: view.getUint16(u + TC.sport, true),
          dport: view.getUint16(u + TC.dport, true),
          state: view.getUint16(u + TC.state, true),
          ownerKnown: view.getUint32(u + TC.owner_known, true) !== 0,
        },
      } as const;
    case Kind.CUDA_REGISTER:
    case Kind.CUDA_NAME_MORE:
      return { kind, register: registration(buf, view, u) } as const;
    case Kind.PROC_EXEC:
      return { kind, exec: { ppid: view.getUint32(u + EX.ppid, true) } } as const;
    case Kind.CUDA_MAPPED:
    case Kind.PROC_EXIT:
      return { kind } as const;
    case Kind.IPC_MESSAGE:
      return {
        kind,
        message: {
          ends: [view.getBigUint64(u + MS.ends, true), view.getBigUint64(u + MS.ends + 8, true)],
          bytes: view.getUint32(u + MS.bytes, true),
          family: view.getUint16(u + MS.family, true),
          send: view.getUint8(u + MS.send) !== 0,
        },
      } as const;
    case Kind.CUDA_LAUNCHES:
    case Kind.SCHED_RUNQUEUE_SUM:
    case Kind.SCHED_BLOCKED_SUM:
    case Kind.FUTEX_WAIT_SUM:
      return summaryBody(kind, view, u);
    default:
      throw unknownKind(kind, index);
  }
}

export class RecordError extends Error {
  override name = 'RecordError';
}

const unknownKind = (kind: number, index: number) =>
  new RecordError(`record ${index}: unknown kind ${kind} (is the loader built from another causeway.h?)`);

/** The cw_span_context of record `r` of a batch, or undefined when it is all zero (none was read). */
export function spanContextAt(buf: Buffer, view: DataView, r: number): SpanContextStamp | undefined {
  const C = LAYOUT.cw_span_context;
  const at = r + E.context;
  const id = at + C.fields.span_id;
  // Most records carry none: tested without making a string.
  if (view.getUint32(id, true) === 0 && view.getUint32(id + 4, true) === 0) return undefined;
  return { traceId: buf.toString('hex', at + C.fields.trace_id, id), spanId: buf.toString('hex', id, at + C.size) };
}

/** Decodes a batch of records, as carried by one EVENTS frame. */
export function decodeRecords(buf: Buffer): KernelRecord[] {
  return decodeRecordsOf(buf, () => true) as KernelRecord[];
}

/**
 * Checks a batch of records (one EVENTS frame's: whole records of known kinds) and decodes those
 * of the kinds `whole` says; the others (undefined) are read from their bytes where needed.
 */
export function decodeRecordsOf(buf: Buffer, whole: (kind: number) => boolean): (KernelRecord | undefined)[] {
  if (buf.length % RECORD_SIZE !== 0) {
    throw new RecordError(
      `an events batch of ${buf.length} bytes is not a whole number of ${RECORD_SIZE}-byte records`,
    );
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const records = new Array<KernelRecord | undefined>(buf.length / RECORD_SIZE).fill(undefined);
  for (let r = 0, index = 0; r < buf.length; r += RECORD_SIZE, index++) {
    const kind = kindAt(view, r);
    if (kind <= 0 || kind >= Kind.MAX) throw unknownKind(kind, index);
    if (whole(kind)) records[index] = decodeRecord(buf, view, r, index);
  }
  return records;
}

/** The kind (enum cw_kind), pid and tid of record `r` of a batch, with nothing made. */
export const kindAt = (view: DataView, r: number) => view.getUint16(r + E.kind, true);
export const pidAt = (view: DataView, r: number) => view.getUint32(r + E.pid, true);
export const tidAt = (view: DataView, r: number) => view.getUint32(r + E.tid, true);

/** A CLOCK_MONOTONIC time as its two 32-bit halves, that others are counted from (nsAfter). */
export interface MonoBase {
  ns: bigint;
  high: number;
  low: number;
}

/** The start of record `r` of a batch, as a MonoBase. */
export function startBase(view: DataView, r: number): MonoBase {
  return {
    ns: view.getBigUint64(r + E.start_ns, true),
    high: view.getUint32(r + E.start_ns + 4, true),
    low: view.getUint32(r + E.start_ns, true),
  };
}

/** Record r's start and end, in ns after `base`: numbers, exact within 104 days of it, with no BigInt made. */
export const startAfter = (view: DataView, r: number, base: MonoBase) => nsAfter(view, r + E.start_ns, base);
export const endAfter = (view: DataView, r: number, base: MonoBase) => nsAfter(view, r + E.end_ns, base);

function nsAfter(view: DataView, at: number, { high, low }: MonoBase): number {
  return (view.getUint32(at + 4, true) - high) * 2 ** 32 + (view.getUint32(at, true) - low);
}

/** How many events record `r` of a batch stands for: a summary's count (in-kernel reduction), 1 for any other. */
export function coveredAt(view: DataView, r: number): number {
  switch (kindAt(view, r)) {
    case Kind.CUDA_LAUNCHES:
      return view.getUint32(r + U + LS.count, true);
    case Kind.SCHED_RUNQUEUE_SUM:
    case Kind.SCHED_BLOCKED_SUM:
    case Kind.FUTEX_WAIT_SUM:
      return view.getUint32(r + U + WS.count, true);
    default:
      return 1;
  }
}

/** The record at byte `r` of a batch (`view` on the same bytes), its `index`-th. */
export function decodeRecord(buf: Buffer, view: DataView, r: number, index: number): KernelRecord {
  const api = view.getUint16(r + E.api, true);
  const header: Header = {
    api: api & ~API_PER_THREAD,
    perThread: (api & API_PER_THREAD) !== 0,
    cpu: view.getUint32(r + E.cpu, true),
    pid: pidAt(view, r),
    tid: tidAt(view, r),
    startNs: view.getBigUint64(r + E.start_ns, true),
    endNs: view.getBigUint64(r + E.end_ns, true),
    comm: commAt(buf, view, r),
    spanContext: spanContextAt(buf, view, r),
  };
  // Onto the header, not spread into a new object: a copy less per record.
  return Object.assign(header, body(kindAt(view, r), buf, view, r, index));
}

/** What the CUDA state reads of a kernel launch: its call, stream, function and outcome. */
export interface LaunchCall extends Pick<Launch, 'func' | 'stream' | 'ret' | 'device'> {
  api: number;
  perThread: boolean;
  pid: number;
  tid: number;
  /** The 32-bit halves func and stream were read from (low, high each): readLaunchCall's. */
  readonly halves: Uint32Array;
}

/** A launch call to read launches into (readLaunchCall). */
export const launchCall = (): LaunchCall => ({
  api: 0,
  perThread: false,
  pid: 0,
  tid: 0,
  func: 0n,
  stream: 0n,
  ret: 0,
  device: 0,
  halves: new Uint32Array(4),
});

/** Whether launch records `r` and `s` of a batch call the same API on the same function in the same process, with nothing made. */
export function sameLaunchCall(view: DataView, r: number, s: number): boolean {
  const func = U + L.func;
  return (
    pidAt(view, r) === pidAt(view, s) &&
    view.getUint16(r + E.api, true) === view.getUint16(s + E.api, true) &&
    view.getUint32(r + func, true) === view.getUint32(s + func, true) &&
    view.getUint32(r + func + 4, true) === view.getUint32(s + func + 4, true)
  );
}

/**
 * Reads the launch call of record `r` of a batch (a CUDA_LAUNCH) from its bytes into `call`, and
 * returns it: decoding each launch whole (its header, grid and block, five BigInts) was a fifth
 * of the garbage of decode through correlation (issue 11's benchmark, 3 launches in 8 events),
 * and an object per launch read a sixteenth after that.
 */
export function readLaunchCall(view: DataView, r: number, call: LaunchCall): LaunchCall {
  const api = view.getUint16(r + E.api, true);
  const u = r + U;
  call.api = api & ~API_PER_THREAD;
  call.perThread = (api & API_PER_THREAD) !== 0;
  call.pid = pidAt(view, r);
  call.tid = tidAt(view, r);
  call.func = u64(view, u + L.func, call.func, call.halves, 0);
  call.stream = u64(view, u + L.stream, call.stream, call.halves, 2);
  call.ret = view.getInt32(u + L.ret, true);
  call.device = view.getInt32(u + L.device, true);
  return call;
}

/**
 * The u64 at `at`: `last` again when its halves are those last read (kept in `halves` from index
 * `h`). Launches come in runs of one function on one stream: a BigInt made per launch was the
 * decode path's last per-event BigInt.
 */
function u64(view: DataView, at: number, last: bigint, halves: Uint32Array, h: number): bigint {
  const low = view.getUint32(at, true);
  const high = view.getUint32(at + 4, true);
  if (low === halves[h] && high === halves[h + 1]) return last;
  halves[h] = low;
  halves[h + 1] = high;
  return view.getBigUint64(at, true);
}

/** The comm of record `r` of a batch. */
export const commAt = (buf: Buffer, view: DataView, r: number) => comms.get(buf, view, r + E.comm);

export interface Hello {
  abiVersion: number;
  eventSize: number;
  ringbufBytes: number;
  ncpus: number;
}

/**
 * Decodes a HELLO frame's payload, refusing one of another record layout: from a loader built
 * apart from this causeway, or in a recording another version of causeway made.
 */
export function decodeHello(buf: Buffer, from: 'loader' | 'recording' = 'loader'): Hello {
  const H = LAYOUT.cw_hello;
  if (buf.length !== H.size) throw new RecordError(`a HELLO frame of ${buf.length} bytes, expected ${H.size}`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const hello = {
    abiVersion: view.getUint32(H.fields.abi_version, true),
    eventSize: view.getUint32(H.fields.event_size, true),
    ringbufBytes: view.getUint32(H.fields.ringbuf_bytes, true),
    ncpus: view.getUint32(H.fields.ncpus, true),
  };
  if (hello.abiVersion !== ABI_VERSION || hello.eventSize !== RECORD_SIZE) {
    throw new RecordError(
      from === 'loader'
        ? `the loader speaks ABI ${hello.abiVersion} with ${hello.eventSize}-byte records, this causeway ABI ${ABI_VERSION} with ${RECORD_SIZE}: rebuild with \`npm run build\``
        : `the recording was made with ABI ${hello.abiVersion} (${hello.eventSize}-byte records), this causeway reads ABI ${ABI_VERSION} (${RECORD_SIZE}-byte records): replay it with the causeway version that recorded it`,
    );
  }
  return hello;
}

export interface Stats {
  monoNs: bigint;
  realNs: bigint;
  /** Indexed by Kind: ring-buffer reservations that failed. */
  drops: number[];
  /** Indexed by Kind: records the probes did not write while told to shed. */
  shed: number[];
  /** Indexed by Kind: records delivered. */
  events: number[];
  ringbufUsed: number;
  followed: number;
  libraries: number;
  gpuProcesses: number;
  /** Host stubs launched, never seen registered, that the loader found no symbol for. */
  unnamedKernels: number;
  /** Processes whose published active span (OTEP 4947 thread context) the probes read. */
  threadContextProcesses: number;
  /** Processes found publishing one the probes cannot read (the loader said why), since its start. */
  threadContextUnresolved: number;
}

export function decodeStats(buf: Buffer): Stats {
  const S = LAYOUT.cw_stats;
  if (buf.length !== S.size) throw new RecordError(`a STATS frame of ${buf.length} bytes, expected ${S.size}`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const counters = (at: number) =>
    Array.from({ length: Kind.MAX }, (_, i) => Number(view.getBigUint64(at + 8 * i, true)));
  return {
    monoNs: view.getBigUint64(S.fields.mono_ns, true),
    realNs: view.getBigUint64(S.fields.real_ns, true),
    drops: counters(S.fields.drops),
    shed: counters(S.fields.shed),
    events: counters(S.fields.events),
    ringbufUsed: Number(view.getBigUint64(S.fields.ringbuf_used, true)),
    followed: view.getUint32(S.fields.followed, true),
    libraries: view.getUint32(S.fields.libraries, true),
    gpuProcesses: view.getUint32(S.fields.gpu_processes, true),
    unnamedKernels: view.getUint32(S.fields.unnamed_kernels, true),
    threadContextProcesses: view.getUint32(S.fields.thread_ctx_processes, true),
    threadContextUnresolved: view.getUint32(S.fields.thread_ctx_unresolved, true),
  };
}

/** A WATERMARK frame's time (CLOCK_MONOTONIC): every record ending before it has been delivered. */
export function decodeWatermark(buf: Buffer): bigint {
  const W = LAYOUT.cw_watermark;
  if (buf.length !== W.size) throw new RecordError(`a WATERMARK frame of ${buf.length} bytes, expected ${W.size}`);
  return buf.readBigUInt64LE(W.fields.mono_ns);
}
