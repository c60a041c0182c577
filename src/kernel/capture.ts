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
import { EventShaper, KIND_NAMES, SUMMARIZED, eventsCovered, type KernelEvent } from './events.js';
import type { Frame } from './frames.js';
import { GpuProcesses, type GpuProcess } from './gpu-processes.js';
import { Loader, type LoaderEnd, type LoaderHealth, type LoaderMessage } from './loader.js';
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
  /** In-kernel reduction (the loader's defaults: on, 10 ms windows, 100 µs thresholds). */
  reduction?: Reduction;
  onEvents: (events: KernelEvent[]) => void | Promise<void>;
  onMessage: (message: LoaderMessage) => void;
  loaderPath?: string;
  /** Also write what is captured to this recording. */
  recording?: Recording;
  /** Events and drops per kind are read from here at each collection. */
  meter?: Meter;
}

/**
 * Per thread per window, launches that returned within launchWholeUs and run-queue waits shorter
 * than runqueueWholeUs are summed in the kernel into one record (cuda.launches, sched.runqueues);
 * windowMs 0 turns reduction off.
 */
export interface Reduction {
  windowMs: number;
  launchWholeUs: number;
  runqueueWholeUs: number;
}

/** The loader's defaults (bpf/filter.c). */
export const REDUCTION: Reduction = { windowMs: 10, launchWholeUs: 100, runqueueWholeUs: 100 };

/** Counters per kind name: the DESIGN kinds, and cuda.register / proc.exec for bookkeeping. */
export type KindCounts = Record<string, number>;

export interface CaptureCounters {
  /** Events handed to onEvents. */
  events: KindCounts;
  /** The kernel events those stand for, by the kind of event: a summary counts as the events it sums. */
  covered: KindCounts;
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
  /** Kernels launched by a host stub never seen registered, that the loader found no symbol for. */
  unnamedKernels: number;
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

/** The loader's supervision, and the capture gaps its exits left. */
export interface LoaderReport extends LoaderHealth {
  /** Time without capture: from each exited loader's last frame to the next one's HELLO. */
  gapMs: number;
  /** Kernel events lost in those gaps, estimated from the rate delivered before each exit. */
  eventsLostInGaps: number;
}

/** Samples (about one a second) over which the rate before a loader's exit is taken. */
const RATE_SAMPLES = 10;

/**
 * The usual parts, new, over `processes`; demangling problems go to onMessage as warnings. The
 * block device names and Causeway's own pids are this machine's unless given (a recording's or
 * a replay's).
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
  const cuda = new CudaState(demangler);
  const self = host.self ?? new SelfPids();
  const shaper = new EventShaper({ clock, cuda, processes, devices: host.devices ?? new BlockDevices(), self });
  return { shaper, clock, cuda, demangler, self };
}

/** The loader's command-line arguments for these options. */
export function loaderArgs(
  options: Pick<CaptureOptions, 'pids' | 'comms' | 'libs' | 'minDurationUs' | 'ringbufMb' | 'followAll' | 'reduction'>,
): string[] {
  const args: string[] = [];
  for (const pid of options.pids) args.push('--pid', String(pid));
  for (const comm of options.comms) args.push('--comm', comm);
  for (const lib of options.libs) args.push('--lib', lib);
  if (options.followAll ?? (options.pids.length === 0 && options.comms.length === 0)) args.push('--all');
  if (options.minDurationUs !== undefined) args.push('--min-duration-us', String(options.minDurationUs));
  if (options.ringbufMb !== undefined) args.push('--ringbuf-mb', String(options.ringbufMb));
  const { reduction } = options;
  if (reduction !== undefined)
    args.push(
      '--reduce-window-ms',
      String(reduction.windowMs),
      '--launch-whole-us',
      String(reduction.launchWholeUs),
      '--runqueue-whole-us',
      String(reduction.runqueueWholeUs),
    );
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
  private readonly loader: Loader | undefined;
  private readonly gpu = new GpuProcesses();
  private resolveReady!: (hello: Hello) => void;
  private readonly emitted = new Map<string, number>();
  private readonly covered = new Map<string, number>();
  // Kernel counters restart from zero with each loader: earlier runs' totals are kept here.
  private previousRuns = {
    drops: new Array<number>(Kind.MAX).fill(0),
    delivered: new Array<number>(Kind.MAX).fill(0),
    unnamedKernels: 0,
  };
  private latest: Stats | null = null;
  private badBatches = 0;
  private failure: string | null = null;
  // Records the running loader delivered, sampled about once a second, for the rate before an exit.
  private runRecords = 0;
  private delivery: { at: number; records: number }[] = [];
  private lastFrameAt = 0;
  private gap: { since: number; perMs: number } | null = null;
  private gapMs = 0;
  private lostInGaps = 0;

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
    if (replay === undefined) {
      this.loader = new Loader({
        ...handlers,
        args: loaderArgs(options),
        onStart: () => {
          this.gpu.restarted();
        },
        onExit: () => {
          this.exited();
        },
        ...(options.loaderPath === undefined ? {} : { path: options.loaderPath }),
      });
      this.source = this.loader;
    } else {
      this.loader = undefined;
      this.source = replay.connect(handlers);
    }
    if (options.meter !== undefined) this.instrument(options.meter);
  }

  start(): void {
    // A first loader that dies before its first frame leaves a gap from here.
    this.lastFrameAt = Date.now();
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

  /** The loader's supervision and capture gaps; undefined for a replay. */
  loaderReport(): LoaderReport | undefined {
    if (this.loader === undefined) return undefined;
    return { ...this.loader.health(), gapMs: this.gapMs, eventsLostInGaps: this.lostInGaps };
  }

  /** The GPU processes found (the first `limit`, by pid), and how many there are. */
  gpuProcesses(limit: number): { processes: GpuProcess[]; listed: number; unlisted: number } {
    return { processes: this.gpu.list(limit), ...this.gpu.counts() };
  }

  counters(): CaptureCounters {
    const sum = (base: number[], now: number[] | undefined) => base.map((value, kind) => value + (now?.[kind] ?? 0));
    return {
      events: Object.fromEntries(this.emitted),
      covered: Object.fromEntries(this.covered),
      drops: namedCounts(sum(this.previousRuns.drops, this.latest?.drops)),
      delivered: namedCounts(sum(this.previousRuns.delivered, this.latest?.events)),
      badBatches: this.badBatches,
      followed: this.latest?.followed ?? 0,
      libraries: this.latest?.libraries ?? 0,
      ringbufUsed: this.latest?.ringbufUsed ?? 0,
      gpuProcesses: this.latest?.gpuProcesses ?? 0,
      unnamedKernels: this.previousRuns.unnamedKernels + (this.latest?.unnamedKernels ?? 0),
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
        covered: counter(
          'causeway_kernel_events_covered',
          'Kernel events captured, per kind, a summary (cuda.launches, sched.runqueues) counting as the events it sums.',
        ),
        drops: counter('causeway_kernel_drops', 'Kernel events lost to a full ring buffer, per kind.'),
        unnamed: counter(
          'causeway_cuda_kernels_unnamed',
          'Kernels registered before capture started whose host stub has no symbol: their launches carry only the function address.',
        ),
        gpu: gauge('causeway_gpu_processes', 'Processes found using CUDA (followed, their libraries probed).'),
        followed: gauge(
          'causeway_followed_processes',
          "Processes in the kernel's followed table (0 when following all).",
        ),
        forgotten: counter(
          'causeway_loader_follows_forgotten',
          'Followed processes unfollowed to make room, the least recently followed first.',
        ),
        up: gauge('causeway_loader_up', '1 while the loader runs; 0 while it is restarted, or once it cannot run.'),
        restarts: counter('causeway_loader_restarts', 'Times the loader was started again after it exited.'),
        failures: gauge(
          'causeway_loader_failures_in_a_row',
          'Loader exits since its last run of 30 s or more: above zero, it keeps failing.',
        ),
        gap: counter(
          'causeway_capture_gap_seconds',
          "Time without capture, from a dead loader's last frame to the next one's first.",
          's',
        ),
        lost: counter(
          'causeway_kernel_events_lost_in_gaps',
          'Kernel events lost while the loader was restarted, estimated from the rate before it exited.',
        ),
      },
      () => {
        const { events, covered, drops, gpuProcesses, unnamedKernels, followed } = this.counters();
        const loader = this.loaderReport();
        return {
          events: perKind(events),
          covered: perKind(covered),
          drops: perKind(drops),
          unnamed: unnamedKernels,
          gpu: gpuProcesses,
          followed,
          forgotten: loader?.followsForgotten,
          up: loader === undefined ? undefined : Number(loader.running),
          restarts: loader?.restarts,
          failures: loader?.failuresInARow,
          gap: loader === undefined ? undefined : loader.gapMs / 1000,
          lost: loader?.eventsLostInGaps,
        };
      },
    );
  }

  private async frame(frame: Frame): Promise<void> {
    this.lastFrameAt = Date.now();
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
    const sampled = this.delivery.at(-1);
    if (sampled === undefined || this.lastFrameAt - sampled.at >= 1000) {
      this.delivery.push({ at: this.lastFrameAt, records: this.runRecords });
      if (this.delivery.length > RATE_SAMPLES) this.delivery.shift();
    }
    // After handling: an EVENTS frame's context is noted while it is shaped, and goes before it.
    this.options.recording?.frame(frame.type, frame.payload);
  }

  private hello(payload: Buffer): void {
    let hello: Hello;
    try {
      hello = decodeHello(payload, this.loader === undefined ? 'recording' : 'loader');
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
        unnamedKernels: this.previousRuns.unnamedKernels + latest.unnamedKernels,
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
    if (this.gap !== null) this.resumed(this.gap);
    this.resolveReady(hello);
  }

  /** A loader exited: capture has been off since its last frame, until the next one's HELLO. */
  private exited(): void {
    // A loader that exits before its HELLO leaves the gap its predecessor opened.
    if (this.gap !== null) return;
    const first = this.delivery[0];
    const last = { at: this.lastFrameAt, records: this.runRecords };
    const perMs =
      first === undefined || last.at === first.at ? 0 : (last.records - first.records) / (last.at - first.at);
    // Capture stopped at the loader's last frame: a killed loader can take seconds to exit, as
    // the kernel detaches each of its uprobes in turn.
    this.gap = { since: this.lastFrameAt, perMs };
    this.delivery = [];
    this.runRecords = 0;
  }

  private resumed(gap: { since: number; perMs: number }): void {
    const ms = Date.now() - gap.since;
    const lost = Math.round(gap.perMs * ms);
    this.gap = null;
    this.gapMs += ms;
    this.lostInGaps += lost;
    this.options.onMessage({
      level: 'warn',
      msg: `capture is back after ${ms} ms without a loader (restart ${this.loader?.health().restarts ?? 0}); about ${lost} kernel events were lost in the gap, at the ${Math.round(gap.perMs * 1000)}/s delivered before the exit`,
      source: 'supervisor',
      fields: { event: 'capture_gap', gapMs: ms, lost },
    });
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
    this.runRecords += records.length;
    await this.parts.cuda.learnNames(records);
    const events: KernelEvent[] = [];
    for (const record of records) {
      const event = this.parts.shaper.shape(record);
      if (event === undefined) continue;
      events.push(event);
      this.emitted.set(event.kind, (this.emitted.get(event.kind) ?? 0) + 1);
      const kind = SUMMARIZED[event.kind] ?? event.kind;
      this.covered.set(kind, (this.covered.get(kind) ?? 0) + eventsCovered(event));
    }
    if (events.length > 0) await this.options.onEvents(events);
  }
}
