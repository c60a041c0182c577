// Per-process CUDA state that gives raw records their meaning: which kernel a launch ran
// (names learned from __cudaRegisterFunction / cuModuleGetFunction records, and from the
// registrations the loader writes for stubs registered before capture started, named from
// their symbols: bpf/stub_names.c), which kernels a graph holds (recorded while its stream was capturing),
// what was still in flight when a sync began (per stream, through events and
// cudaStreamWaitEvent, inflight.ts), and how many bytes a cudaFree released. Every table
// is bounded.
import type { Demangler } from './demangle.js';
import {
  Stream,
  beginCapture,
  capture,
  emptyPending,
  endCapture,
  type Capture,
  type GraphKernels,
  type Pending,
} from './inflight.js';
import { Lru } from './lru.js';
import {
  CudaApi,
  DEVICE_UNKNOWN,
  Kind,
  RECORD_SIZE,
  kindAt,
  launchCall,
  readLaunchCall,
  sameLaunchCall,
  type CudaOp,
  type KernelRecord,
  type LaunchCall,
} from './record.js';

const MAX_INFLIGHT_NAMES = 5;
/** cudaStreamLegacy and cudaStreamPerThread, which the driver's CU_STREAM_LEGACY and CU_STREAM_PER_THREAD equal. */
const STREAM_LEGACY = 1n;
const STREAM_PER_THREAD = 2n;

export interface KernelName {
  name: string;
  symbol: string;
}

/** A launched graph: the graph it was instantiated from and its kernels, when the capture was seen. */
export interface GraphLaunch {
  graph?: bigint;
  kernels?: { names: string[]; count: number };
}

export interface Launched {
  kernel?: KernelName;
  /** Recorded into a graph being captured on its stream, not run. */
  captured: boolean;
  graph?: GraphLaunch;
  /** For a launch that blocked: the work queued ahead of it on its stream. */
  ahead?: Inflight;
}

export interface Inflight {
  count: number;
  kernels: string[];
  graphs: bigint[];
  bytes: number;
  streams: bigint[];
}

export interface Synced {
  inflight?: Inflight;
  /** The event awaited, for an event sync or poll. */
  event?: bigint;
  /** The stream awaited: the sync's own, or the stream an awaited event was recorded on. */
  stream?: bigint;
  /** The device of the awaited work, when known. */
  device?: number;
}

type RecordOf<K extends number> = Extract<KernelRecord, { kind: K }>;

interface EventState {
  /** Where and when it was recorded, or the capture it was recorded into. */
  stream?: Stream;
  seq: number;
  capture?: Capture;
}

interface ExecState {
  graph: bigint;
  kernels?: GraphKernels;
}

/**
 * A function's kernel as registered, and what a launch of it says, queued or captured: made once
 * per function, not per launch (each launch's own objects were a quarter of its garbage).
 */
interface KnownKernel {
  kernel: KernelName;
  queued: Launched;
  captured: Launched;
}

const UNNAMED_QUEUED: Launched = { captured: false };
const UNNAMED_CAPTURED: Launched = { captured: true };

/** The legacy default streams' keys (ProcessCuda.streams) by device, made once each. */
const legacyKeys = new Map<number | undefined, string>();

function legacyKey(device: number | undefined): string {
  let key = legacyKeys.get(device);
  if (key === undefined) {
    key = `legacy/${device}`;
    // Devices are a machine's GPUs: a few keys, but bounded whatever a record says.
    if (legacyKeys.size < 256) legacyKeys.set(device, key);
  }
  return key;
}

interface ProcessCuda {
  /** func (host stub, CUfunction or CUkernel) -> its symbol, for every kernel registered. */
  registered: Lru<bigint, string>;
  /** func -> its kernel, named: the kernels launched. */
  symbols: Lru<bigint, KnownKernel>;
  /** By handle; the default streams by name (per device, and the per-thread one per thread). */
  streams: Lru<string | bigint, Stream>;
  events: Lru<bigint, EventState>;
  graphs: Lru<bigint, GraphKernels>;
  execs: Lru<bigint, ExecState>;
  allocations: Lru<bigint, number>;
}

export interface CudaLimits {
  processes: number;
  kernelsPerProcess: number;
  streamsPerProcess: number;
  eventsPerProcess: number;
  graphsPerProcess: number;
  allocationsPerProcess: number;
}

const DEFAULT_LIMITS: CudaLimits = {
  processes: 1024,
  kernelsPerProcess: 65536,
  streamsPerProcess: 4096,
  eventsPerProcess: 4096,
  graphsPerProcess: 1024,
  allocationsPerProcess: 65536,
};

/**
 * The longest kernel name given, in characters; the symbol stays whole. C++ templates demangle
 * to thousands (one of PyTorch's, from a 550-byte symbol, to 11,223), and a name travels on
 * every span of a launch or a sync that waits for the kernel.
 */
const MAX_NAME_CHARS = 1024;

const GRAPH_LAUNCHES = new Set<number>([CudaApi.cudaGraphLaunch, CudaApi.cuGraphLaunch]);
const STREAM_WAITS = new Set<number>([
  CudaApi.cudaStreamSynchronize,
  CudaApi.cuStreamSynchronize,
  CudaApi.cudaStreamQuery,
  CudaApi.cuStreamQuery,
]);
const EVENT_WAITS = new Set<number>([
  CudaApi.cudaEventSynchronize,
  CudaApi.cuEventSynchronize,
  CudaApi.cudaEventQuery,
  CudaApi.cuEventQuery,
]);

const known = (device: number) => (device === DEVICE_UNKNOWN ? undefined : device);

export class CudaState {
  private readonly processes: Lru<number, ProcessCuda>;
  /**
   * The old program's state of each process that exec'd in the batch being learned and shaped:
   * learnNames has moved on to the new program's, and the batch's records before the exec are
   * shaped with this one (until execed).
   */
  private readonly beforeExec = new Map<number, ProcessCuda>();
  private readonly limits: CudaLimits;
  private readonly call = launchCall();

  constructor(
    private readonly demangler: Demangler,
    limits: Partial<CudaLimits> = {},
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    this.processes = new Lru(this.limits.processes);
  }

  /**
   * Learns what a batch says of kernel names, in order: the names registered (in parts, when
   * long), and the first launches of registered kernels, whose names it demangles then, so that
   * shaping the batch's events afterwards needs no I/O. `records` are the batch's, decoded whole
   * where readWhole says, and `payload` its bytes. Only kernels launched are demangled and kept
   * named: PyTorch registers some 21,000 at `import torch`, and launches a few hundred.
   */
  async learnNames(records: readonly (KernelRecord | undefined)[], payload: Buffer): Promise<void> {
    const fresh = new Set<KernelName>();
    const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    this.beforeExec.clear();
    // The batch's last launch looked at: launches come in runs of one kernel, and one like it is
    // named already (naming, mostly reading each launch's call, was a twentieth of decode through
    // correlation).
    let lastLaunch: number | undefined;
    records.forEach((record, i) => {
      if (record === undefined) {
        // A launch is read from its bytes (the shaper's hot path): only its function, here.
        const r = i * RECORD_SIZE;
        if (kindAt(view, r) !== Kind.CUDA_LAUNCH) return;
        if (lastLaunch !== undefined && sameLaunchCall(view, r, lastLaunch)) return;
        lastLaunch = r;
        const call = readLaunchCall(view, r, this.call);
        if (!GRAPH_LAUNCHES.has(call.api)) this.nameLaunched(call.pid, call.func, fresh);
        return;
      }
      // Any record read whole, registrations and execs among them, may name the next launch anew.
      lastLaunch = undefined;
      switch (record.kind) {
        case Kind.CUDA_REGISTER: {
          // An empty name: neither the probe nor the loader could read it (the loader then names
          // the stub from its symbol at its first launch).
          if (record.register.name === '') return;
          const process = this.current(record.pid);
          process.registered.set(record.register.func, record.register.name);
          process.symbols.delete(record.register.func);
          return;
        }
        case Kind.CUDA_NAME_MORE: {
          // The rest of a name too long for its registration, which the loader wrote just before.
          const { registered } = this.current(record.pid);
          const symbol = registered.get(record.register.func);
          if (symbol !== undefined) registered.set(record.register.func, symbol + record.register.name);
          return;
        }
        case Kind.CUDA_LAUNCHES:
          for (const { func } of record.launches.funcs) this.nameLaunched(record.pid, func, fresh);
          return;
        case Kind.PROC_EXEC: {
          // A new program: the old image's addresses and handles mean nothing now.
          if (!this.beforeExec.has(record.pid))
            this.beforeExec.set(record.pid, this.processes.get(record.pid) ?? this.fresh());
          this.processes.delete(record.pid);
        }
      }
    });
    // Most batches launch no kernel for the first time: no demangler round, nor a promise of it.
    if (fresh.size === 0) return;
    await this.demangler.demangleAll([...fresh].map((kernel) => kernel.symbol));
    for (const kernel of fresh) kernel.name = this.name(kernel.symbol);
  }

  /** A function launched: its kernel named from its registration, at the first launch. */
  private nameLaunched(pid: number, func: bigint, fresh: Set<KernelName>): void {
    const process = this.current(pid);
    if (process.symbols.has(func)) return;
    const symbol = process.registered.get(func);
    if (symbol === undefined) return;
    const kernel = { symbol, name: symbol };
    process.symbols.set(func, { kernel, queued: { kernel, captured: false }, captured: { kernel, captured: true } });
    fresh.add(kernel);
  }

  /**
   * A launch of a kernel or a graph: recorded into a capture, or queued on its stream. A `long`
   * one, with work queued ahead of it on its stream, blocked on a full launch queue: it is told
   * what was queued ahead. A long launch onto an empty stream waited for something else (the
   * first launch of a kernel loads its module).
   */
  launch(call: LaunchCall, long: boolean): Launched {
    const process = this.process(call.pid);
    const stream = this.stream(process, call, call.stream, call.device);
    const queued = long && stream.capture === undefined ? stream.queued() : undefined;
    const ahead = queued !== undefined && queued.streams.length > 0 ? this.inflight(queued) : undefined;
    const launched = GRAPH_LAUNCHES.has(call.api)
      ? this.graphLaunch(process, stream, call.func, call.ret)
      : this.kernelLaunch(process, stream, call.func, call.ret);
    return ahead === undefined ? launched : { ...launched, ahead };
  }

  /**
   * A launch summary (in-kernel reduction): each function's launches queued on the stream (or
   * recorded into its capture) as one item, in first-launch order. Returns the kernels' names
   * (the function in hex when unnamed) with their counts, and whether they were captured.
   */
  launches(record: RecordOf<typeof Kind.CUDA_LAUNCHES>): { names: string[]; counts: number[]; captured: boolean } {
    const { launches } = record;
    const process = this.process(record.pid);
    const stream = this.stream(process, record, launches.stream, launches.device);
    const names: string[] = [];
    const counts: number[] = [];
    for (const { func, count } of launches.funcs) {
      const kernel = process.symbols.get(func)?.kernel;
      // Into a capture, each launch is one of the graph's kernels: the symbol once per launch.
      if (stream.capture !== undefined)
        capture(stream.capture, kernel === undefined ? [] : new Array<string>(count).fill(kernel.symbol), count);
      else stream.launched(kernel?.symbol, count);
      names.push(kernel?.name ?? `0x${func.toString(16)}`);
      counts.push(count);
    }
    return { names, counts, captured: stream.capture !== undefined };
  }

  /** An asynchronous copy: queued on its stream. */
  copied(record: RecordOf<typeof Kind.CUDA_MEMCPY>): void {
    const { memcpy } = record;
    if (!memcpy.async || memcpy.ret !== 0) return;
    const stream = this.stream(this.process(record.pid), record, memcpy.stream, memcpy.device);
    if (stream.capture === undefined) stream.copied(Number(memcpy.bytes));
  }

  /** A sync (blocking, or a poll that ended): what was in flight on what it waited for, which is then complete. */
  synced(record: RecordOf<typeof Kind.CUDA_SYNC>): Synced {
    const { sync } = record;
    const process = this.process(record.pid);
    const device = known(sync.device);
    if (STREAM_WAITS.has(record.api)) {
      const stream = this.stream(process, record, sync.handle, sync.device);
      return {
        inflight: this.inflight(stream.complete(stream.seq)),
        stream: stream.handle,
        ...this.on(stream, device),
      };
    }
    if (EVENT_WAITS.has(record.api)) {
      const event = process.events.get(sync.handle);
      if (event?.stream === undefined) return { event: sync.handle, ...(device === undefined ? {} : { device }) };
      return {
        inflight: this.inflight(event.stream.complete(event.seq)),
        event: sync.handle,
        stream: event.stream.handle,
        ...this.on(event.stream, device),
      };
    }
    // A device or context sync: every stream of the process on that device.
    const pending = emptyPending();
    for (const stream of process.streams.values())
      if (device === undefined || stream.device === undefined || stream.device === device)
        stream.complete(stream.seq, pending);
    return { inflight: this.inflight(pending), ...(device === undefined ? {} : { device }) };
  }

  /** Capture, instantiation, event record and stream wait: bookkeeping for later launches and syncs. */
  operation(record: RecordOf<typeof Kind.CUDA_OP>): void {
    const { op } = record;
    if (op.ret !== 0) return;
    const process = this.process(record.pid);
    switch (record.api) {
      case CudaApi.cudaStreamBeginCapture:
      case CudaApi.cuStreamBeginCapture:
        beginCapture(this.stream(process, record, op.stream, op.device));
        break;
      case CudaApi.cudaStreamEndCapture:
      case CudaApi.cuStreamEndCapture: {
        const kernels = endCapture(this.stream(process, record, op.stream, op.device));
        if (kernels !== undefined && op.graph !== 0n) process.graphs.set(op.graph, kernels);
        break;
      }
      case CudaApi.cudaGraphInstantiate:
      case CudaApi.cuGraphInstantiate: {
        const kernels = process.graphs.get(op.graph);
        process.execs.set(op.exec, { graph: op.graph, ...(kernels === undefined ? {} : { kernels }) });
        break;
      }
      case CudaApi.cudaEventRecord:
      case CudaApi.cuEventRecord:
        this.recordEvent(process, record, op);
        break;
      case CudaApi.cudaStreamWaitEvent:
      case CudaApi.cuStreamWaitEvent:
        this.waitEvent(process, record, op);
        break;
    }
  }

  allocated(pid: number, ptr: bigint, bytes: number): void {
    this.process(pid).allocations.set(ptr, bytes);
  }

  /** Bytes of the allocation a free releases, if its cudaMalloc was seen. */
  freed(pid: number, ptr: bigint): number | undefined {
    const { allocations } = this.process(pid);
    const bytes = allocations.get(ptr);
    allocations.delete(ptr);
    return bytes;
  }

  private kernelLaunch(process: ProcessCuda, stream: Stream, func: bigint, ret: number): Launched {
    const known = process.symbols.get(func);
    const symbol = known?.kernel.symbol;
    if (ret === 0) {
      if (stream.capture !== undefined) capture(stream.capture, symbol === undefined ? [] : [symbol], 1);
      else stream.launched(symbol);
    }
    if (stream.capture !== undefined) return known?.captured ?? UNNAMED_CAPTURED;
    return known?.queued ?? UNNAMED_QUEUED;
  }

  private graphLaunch(process: ProcessCuda, stream: Stream, exec: bigint, ret: number): Launched {
    const known = process.execs.get(exec);
    const kernels = known?.kernels;
    const graph: GraphLaunch = {
      ...(known === undefined ? {} : { graph: known.graph }),
      ...(kernels === undefined
        ? {}
        : { kernels: { names: kernels.symbols.map((s) => this.name(s)), count: kernels.count } }),
    };
    // A graph launched into a capture becomes a child graph: its kernels join the capture.
    if (stream.capture !== undefined) {
      if (ret === 0 && kernels !== undefined) capture(stream.capture, kernels.symbols, kernels.count);
      return { captured: true, graph };
    }
    if (ret === 0) stream.graphLaunched(exec, kernels);
    return { captured: false, graph };
  }

  private recordEvent(process: ProcessCuda, record: KernelRecord, op: CudaOp): void {
    const stream = this.stream(process, record, op.stream, op.device);
    // An event recorded into a capture lets other streams join it (the fork of a captured fork-join).
    if (stream.capture !== undefined) process.events.set(op.event, { seq: 0, capture: stream.capture });
    else process.events.set(op.event, { stream, seq: stream.seq });
  }

  private waitEvent(process: ProcessCuda, record: KernelRecord, op: CudaOp): void {
    const event = process.events.get(op.event);
    if (event === undefined) return;
    const stream = this.stream(process, record, op.stream, op.device);
    if (event.capture !== undefined) {
      stream.capture = event.capture;
      event.capture.streams.add(stream);
    } else if (event.stream !== undefined) {
      stream.waitFor(event.stream, event.seq);
    }
  }

  private on(stream: Stream, device: number | undefined): { device?: number } {
    const d = stream.device ?? device;
    return d === undefined ? {} : { device: d };
  }

  private inflight(pending: Pending): Inflight {
    const symbols = [...new Set(pending.symbols)].slice(0, MAX_INFLIGHT_NAMES);
    return {
      count: pending.kernels,
      kernels: symbols.map((symbol) => this.name(symbol)),
      graphs: [...new Set(pending.graphs)].slice(0, MAX_INFLIGHT_NAMES),
      bytes: pending.bytes,
      streams: pending.streams.slice(0, MAX_INFLIGHT_NAMES),
    };
  }

  private name(symbol: string): string {
    const name = this.demangler.cached(symbol) ?? symbol;
    return name.length <= MAX_NAME_CHARS ? name : `${name.slice(0, MAX_NAME_CHARS - 1)}…`;
  }

  /**
   * The stream a handle names in this call. The default streams are per device (and the
   * per-thread one per thread too): a per-thread variant's 0 is the thread's own stream.
   */
  private stream(
    process: ProcessCuda,
    record: Pick<KernelRecord, 'tid' | 'perThread'>,
    handle: bigint,
    device: number,
  ): Stream {
    const d = known(device);
    let key: string | bigint = handle;
    if (handle === STREAM_PER_THREAD || (handle === 0n && record.perThread)) key = `thread/${record.tid}/${d}`;
    else if (handle === 0n || handle === STREAM_LEGACY) key = legacyKey(d);
    let stream = process.streams.get(key);
    if (stream === undefined) {
      stream = new Stream(handle, d);
      process.streams.set(key, stream);
    } else if (stream.device === undefined && d !== undefined) {
      stream.device = d;
    }
    return stream;
  }

  /** The shaper reached a process's exec: its records from here on are the new program's. */
  execed(pid: number): void {
    this.beforeExec.delete(pid);
  }

  /** A process exited: its kernels, streams and handles go with it (its pid may be used again). */
  exited(pid: number): void {
    this.processes.delete(pid);
  }

  /** A process's state as its records are shaped: the old program's until the shaper reaches an exec of the batch. */
  private process(pid: number): ProcessCuda {
    return (this.beforeExec.size === 0 ? undefined : this.beforeExec.get(pid)) ?? this.current(pid);
  }

  /** A process's state as learnNames reads the batch, made when it has none. */
  private current(pid: number): ProcessCuda {
    let state = this.processes.get(pid);
    if (state === undefined) this.processes.set(pid, (state = this.fresh()));
    return state;
  }

  private fresh(): ProcessCuda {
    return {
      registered: new Lru(this.limits.kernelsPerProcess),
      symbols: new Lru(this.limits.kernelsPerProcess),
      streams: new Lru(this.limits.streamsPerProcess),
      events: new Lru(this.limits.eventsPerProcess),
      graphs: new Lru(this.limits.graphsPerProcess),
      execs: new Lru(this.limits.graphsPerProcess),
      allocations: new Lru(this.limits.allocationsPerProcess),
    };
  }
}
