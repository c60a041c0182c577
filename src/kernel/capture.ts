// A kernel capture: the loader's frames decoded into KernelEvents, in order, with the
// clock resampled from every STATS frame and per-kind counters kept across restarts, and the
// GPU processes the loader finds. What it decodes with (the shaper and the state it reads) is
// handed in: captureParts() builds the usual set, over a process table the caller may share.
// The frames may also come from a file (a Replay), and be written to one (a Recording).
import type { Meter } from '@opentelemetry/api';
import { counter, gauge, observe } from '../export/metrics.js';
import { EpochClock } from './clock.js';
import { CudaState } from './cuda.js';
import { Demangler } from './demangle.js';
import { BlockDevices } from './devices.js';
import { EventShaper, KIND_NAMES, type KernelEvent } from './events.js';
import type { Frame } from './frames.js';
import { GpuProcesses, type GpuProcess } from './gpu-processes.js';
import { Loader, type LoaderEnd, type LoaderMessage } from './loader.js';
import type { FrameSource, HostLookups, Recording, Replay } from './recording.js';
import {
  FrameType,
  Kind,
  RecordError,
  decodeHello,
  decodeRecords,
  decodeStats,
  type Hello,
  type Stats,
} from './record.js';
import { SelfPids } from './self-pids.js';
import { SymbolResolver } from './symbols.js';

export interface CaptureOptions {
  /** Processes to follow; with neither pids nor comms (and followAll unset), every process is followed. */
  pids: number[];
  /** false: start following nothing and add processes later (loader.follow). */
  followAll?: boolean;
  comms: string[];
  /** CUDA libraries or executables to probe besides those found in followed processes. */
  libs: string[];
  minDurationUs?: number;
  /** Ring-buffer size in MiB, a power of two (the loader's default: 16). */
  ringbufMb?: number;
  onEvents: (events: KernelEvent[]) => void | Promise<void>;
  onMessage: (message: LoaderMessage) => void;
  loaderPath?: string;
  /** Also write what is captured to this recording. */
  recording?: Recording;
  /** Events and drops per kind are read from here at each collection. */
  meter?: Meter;
}

/** Counters per kind name: the DESIGN kinds, and cuda.register / proc.exec for bookkeeping. */
export type KindCounts = Record<string, number>;

export interface CaptureCounters {
  /** Events handed to onEvents. */
  events: KindCounts;
  /** Ring-buffer reservations that failed in the kernel, per probe kind. */
  drops: KindCounts;
  /** Records the loader delivered, per kind, as its STATS frames count them. */
  delivered: KindCounts;
  /** EVENTS frames that could not be decoded. */
  badBatches: number;
  /** From the loader's latest STATS frame: processes followed, CUDA libraries probed, ring bytes in use. */
  followed: number;
  libraries: number;
  ringbufUsed: number;
  /** Processes the loader found using CUDA. */
  gpuProcesses: number;
}

const COUNTER_NAMES: ReadonlyMap<number, string> = new Map<number, string>([
  ...Object.entries(KIND_NAMES).map(([kind, name]) => [Number(kind), name] as const),
  [Kind.CUDA_REGISTER, 'cuda.register'],
  [Kind.PROC_EXEC, 'proc.exec'],
  [Kind.CUDA_OP, 'cuda.op'],
  [Kind.CUDA_MAPPED, 'cuda.mapped'],
  [Kind.PROC_EXIT, 'proc.exit'],
]);

/** What a capture decodes with. The shaper is built over the same clock, CUDA state and self pids. */
export interface CaptureParts {
  shaper: EventShaper;
  /** Resampled from every STATS frame. */
  clock: EpochClock;
  /** Learns kernel names from each batch before the batch is shaped. */
  cuda: CudaState;
  /** The CUDA state's demangler: the capture closes it when it stops. */
  demangler: Demangler;
  /** Causeway's own pids, which the shaper tells apart: the capture adds each loader it starts. */
  self: SelfPids;
}

/**
 * The usual parts, new, over `processes`; demangling problems go to onMessage as warnings. The
 * symbol tables, block device names and Causeway's own pids are this machine's unless given
 * (a recording's or a replay's).
 */
export function captureParts(
  processes: HostLookups['processes'],
  onMessage: (message: LoaderMessage) => void,
  host: Partial<Omit<HostLookups, 'processes'>> & { self?: SelfPids } = {},
): CaptureParts {
  const clock = new EpochClock();
  const demangler = new Demangler((msg) => {
    onMessage({ level: 'warn', msg, source: 'supervisor', fields: {} });
  });
  const cuda = new CudaState(demangler, host.symbols ?? new SymbolResolver());
  const self = host.self ?? new SelfPids();
  const shaper = new EventShaper({ clock, cuda, processes, devices: host.devices ?? new BlockDevices(), self });
  return { shaper, clock, cuda, demangler, self };
}

/** The loader's command-line arguments for these options. */
export function loaderArgs(
  options: Pick<CaptureOptions, 'pids' | 'comms' | 'libs' | 'minDurationUs' | 'ringbufMb' | 'followAll'>,
): string[] {
  const args: string[] = [];
  for (const pid of options.pids) args.push('--pid', String(pid));
  for (const comm of options.comms) args.push('--comm', comm);
  for (const lib of options.libs) args.push('--lib', lib);
  if (options.followAll ?? (options.pids.length === 0 && options.comms.length === 0)) args.push('--all');
  if (options.minDurationUs !== undefined) args.push('--min-duration-us', String(options.minDurationUs));
  if (options.ringbufMb !== undefined) args.push('--ringbuf-mb', String(options.ringbufMb));
  return args;
}

function namedCounts(values: readonly number[]): KindCounts {
  const counts: KindCounts = {};
  for (const [kind, name] of COUNTER_NAMES) counts[name] = values[kind] ?? 0;
  return counts;
}

export class KernelCapture {
  /** Resolves at the first HELLO: every probe is attached. */
  readonly ready: Promise<Hello>;
  private readonly source: FrameSource;
  private readonly gpu = new GpuProcesses();
  private resolveReady!: (hello: Hello) => void;
  private readonly emitted = new Map<string, number>();
  // Kernel counters restart from zero with each loader: earlier runs' totals are kept here.
  private previousRuns = { drops: new Array<number>(Kind.MAX).fill(0), delivered: new Array<number>(Kind.MAX).fill(0) };
  private latest: Stats | null = null;
  private badBatches = 0;
  private failure: string | null = null;

  /** From the loader, or, given a replay, from its file. */
  constructor(
    private readonly options: CaptureOptions,
    private readonly parts: CaptureParts,
    replay?: Replay,
  ) {
    this.ready = new Promise((resolve) => (this.resolveReady = resolve));
    const handlers = {
      onFrame: (frame: Frame) => this.frame(frame),
      onMessage: (message: LoaderMessage) => {
        this.message(message);
      },
    };
    this.source =
      replay?.connect(handlers) ??
      new Loader({
        ...handlers,
        args: loaderArgs(options),
        onStart: () => {
          this.gpu.restarted();
        },
        ...(options.loaderPath === undefined ? {} : { path: options.loaderPath }),
      });
    if (options.meter !== undefined) this.instrument(options.meter);
  }

  start(): void {
    this.source.start();
  }

  /** Follows a process from now on (and after a loader restart); following it again changes nothing. */
  follow(pid: number): void {
    this.source.follow(pid);
  }

  /** Settles when capture is over: stopped, or it cannot run (then with the reason). */
  get ended(): Promise<LoaderEnd> {
    return this.source.ended.then((end) => (this.failure === null ? end : { failure: this.failure }));
  }

  async stop(): Promise<LoaderEnd> {
    await this.source.stop();
    this.parts.demangler.close();
    this.options.recording?.close();
    return this.ended;
  }

  /** The GPU processes found (the first `limit`, by pid), and how many there are. */
  gpuProcesses(limit: number): { processes: GpuProcess[]; listed: number; unlisted: number } {
    return { processes: this.gpu.list(limit), ...this.gpu.counts() };
  }

  counters(): CaptureCounters {
    const sum = (base: number[], now: number[] | undefined) => base.map((value, kind) => value + (now?.[kind] ?? 0));
    return {
      events: Object.fromEntries(this.emitted),
      drops: namedCounts(sum(this.previousRuns.drops, this.latest?.drops)),
      delivered: namedCounts(sum(this.previousRuns.delivered, this.latest?.events)),
      badBatches: this.badBatches,
      followed: this.latest?.followed ?? 0,
      libraries: this.latest?.libraries ?? 0,
      ringbufUsed: this.latest?.ringbufUsed ?? 0,
      gpuProcesses: this.latest?.gpuProcesses ?? 0,
    };
  }

  private message(message: LoaderMessage): void {
    if (message.source === 'loader') {
      this.gpu.message(message);
      const { level, msg, fields } = message;
      this.options.recording?.frame(FrameType.MESSAGE, Buffer.from(JSON.stringify({ level, msg, ...fields })));
    }
    this.options.onMessage(message);
  }

  private instrument(meter: Meter): void {
    const perKind = (counts: KindCounts) =>
      Object.entries(counts).map(([kind, n]) => [n, { kind }] as [number, { kind: string }]);
    observe(
      meter,
      {
        events: counter('causeway_kernel_events', 'Kernel events decoded, per kind.'),
        drops: counter('causeway_kernel_drops', 'Kernel events lost to a full ring buffer, per kind.'),
        gpu: gauge('causeway_gpu_processes', 'Processes found using CUDA (followed, their libraries probed).'),
      },
      () => {
        const { events, drops, gpuProcesses } = this.counters();
        return { events: perKind(events), drops: perKind(drops), gpu: gpuProcesses };
      },
    );
  }

  private async frame(frame: Frame): Promise<void> {
    switch (frame.type) {
      case FrameType.HELLO:
        this.hello(frame.payload);
        break;
      case FrameType.STATS: {
        const stats = decodeStats(frame.payload);
        this.parts.clock.update(stats.monoNs, stats.realNs);
        this.latest = stats;
        break;
      }
      case FrameType.EVENTS:
        await this.events(frame.payload);
        break;
    }
    // After handling: an EVENTS frame's context is noted while it is shaped, and goes before it.
    this.options.recording?.frame(frame.type, frame.payload);
  }

  private hello(payload: Buffer): void {
    let hello: Hello;
    try {
      hello = decodeHello(payload);
    } catch (error) {
      if (!(error instanceof RecordError)) throw error;
      this.failure = error.message;
      this.options.onMessage({ level: 'error', msg: error.message, source: 'supervisor', fields: {} });
      void this.source.stop();
      return;
    }
    // A restarted loader counts from zero again.
    if (this.latest !== null) {
      const latest = this.latest;
      this.previousRuns = {
        drops: this.previousRuns.drops.map((value, kind) => value + (latest.drops[kind] ?? 0)),
        delivered: this.previousRuns.delivered.map((value, kind) => value + (latest.events[kind] ?? 0)),
      };
      this.latest = null;
    }
    const pid = this.source.pid;
    if (pid !== undefined) {
      this.parts.self.addLoader(pid);
      this.options.recording?.self(pid);
    }
    // The loader scans before it says hello: a GPU process it did not report again has exited.
    this.gpu.scanned();
    this.resolveReady(hello);
  }

  private async events(payload: Buffer): Promise<void> {
    let records;
    try {
      records = decodeRecords(payload);
    } catch (error) {
      if (!(error instanceof RecordError)) throw error;
      this.badBatches++;
      this.options.onMessage({
        level: 'error',
        msg: `dropped an undecodable events batch: ${error.message}`,
        source: 'supervisor',
        fields: {},
      });
      return;
    }
    await this.parts.cuda.learnNames(records);
    const events: KernelEvent[] = [];
    for (const record of records) {
      const event = this.parts.shaper.shape(record);
      if (event === undefined) continue;
      events.push(event);
      this.emitted.set(event.kind, (this.emitted.get(event.kind) ?? 0) + 1);
    }
    if (events.length > 0) await this.options.onEvents(events);
  }
}
