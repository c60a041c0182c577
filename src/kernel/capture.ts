// A kernel capture: the loader's frames decoded into KernelEvents, in order, with the
// clock resampled from every STATS frame and per-kind counters kept across restarts.
import { EpochClock } from './clock.js';
import { CudaState } from './cuda.js';
import { Demangler } from './demangle.js';
import { BlockDevices } from './devices.js';
import { EventShaper, KIND_NAMES, type KernelEvent } from './events.js';
import type { Frame } from './frames.js';
import { Loader, type LoaderEnd, type LoaderMessage } from './loader.js';
import { ProcessTable } from './processes.js';
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
}

const COUNTER_NAMES: ReadonlyMap<number, string> = new Map<number, string>([
  ...Object.entries(KIND_NAMES).map(([kind, name]) => [Number(kind), name] as const),
  [Kind.CUDA_REGISTER, 'cuda.register'],
  [Kind.PROC_EXEC, 'proc.exec'],
]);

/** Pids remembered as Causeway's own: this process and its latest loaders. */
const MAX_SELF_PIDS = 8;

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
  readonly loader: Loader;
  /** Resolves at the first HELLO: every probe is attached. */
  readonly ready: Promise<Hello>;
  private resolveReady!: (hello: Hello) => void;
  private readonly clock = new EpochClock();
  private readonly demangler: Demangler;
  private readonly cuda: CudaState;
  private readonly shaper: EventShaper;
  private readonly emitted = new Map<string, number>();
  /** This process and its loaders, the latest few: a record may name a loader that was since restarted. */
  private readonly self = new Set<number>([process.pid]);
  // Kernel counters restart from zero with each loader: earlier runs' totals are kept here.
  private previousRuns = { drops: new Array<number>(Kind.MAX).fill(0), delivered: new Array<number>(Kind.MAX).fill(0) };
  private latest: Stats | null = null;
  private badBatches = 0;
  private failure: string | null = null;

  constructor(private readonly options: CaptureOptions) {
    this.ready = new Promise((resolve) => (this.resolveReady = resolve));
    this.demangler = new Demangler((msg) => {
      options.onMessage({ level: 'warn', msg, source: 'supervisor', fields: {} });
    });
    this.cuda = new CudaState(this.demangler, new SymbolResolver());
    this.shaper = new EventShaper({
      clock: this.clock,
      cuda: this.cuda,
      processes: new ProcessTable(),
      devices: new BlockDevices(),
      self: this.self,
    });
    this.loader = new Loader({
      args: loaderArgs(options),
      onFrame: (frame) => this.frame(frame),
      onMessage: options.onMessage,
      ...(options.loaderPath === undefined ? {} : { path: options.loaderPath }),
    });
  }

  start(): void {
    this.loader.start();
  }

  /** Settles when capture is over: stopped, or it cannot run (then with the reason). */
  get ended(): Promise<LoaderEnd> {
    return this.loader.ended.then((end) => (this.failure === null ? end : { failure: this.failure }));
  }

  async stop(): Promise<LoaderEnd> {
    await this.loader.stop();
    this.demangler.close();
    return this.ended;
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
    };
  }

  private async frame(frame: Frame): Promise<void> {
    switch (frame.type) {
      case FrameType.HELLO:
        this.hello(frame.payload);
        break;
      case FrameType.STATS: {
        const stats = decodeStats(frame.payload);
        this.clock.update(stats.monoNs, stats.realNs);
        this.latest = stats;
        break;
      }
      case FrameType.EVENTS:
        await this.events(frame.payload);
        break;
    }
  }

  private hello(payload: Buffer): void {
    let hello: Hello;
    try {
      hello = decodeHello(payload);
    } catch (error) {
      if (!(error instanceof RecordError)) throw error;
      this.failure = error.message;
      this.options.onMessage({ level: 'error', msg: error.message, source: 'supervisor', fields: {} });
      void this.loader.stop();
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
    this.rememberLoader();
    this.resolveReady(hello);
  }

  private rememberLoader(): void {
    const pid = this.loader.pid;
    if (pid === undefined) return;
    this.self.add(pid);
    const oldest = [...this.self].find((p) => p !== process.pid);
    if (this.self.size > MAX_SELF_PIDS && oldest !== undefined) this.self.delete(oldest);
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
    await this.cuda.learnNames(records);
    const events: KernelEvent[] = [];
    for (const record of records) {
      const event = this.shaper.shape(record);
      if (event === undefined) continue;
      events.push(event);
      this.emitted.set(event.kind, (this.emitted.get(event.kind) ?? 0) + 1);
    }
    if (events.length > 0) await this.options.onEvents(events);
  }
}
