// A kernel capture: the loader's frames decoded into KernelEvents, in order, with the
// clock resampled from every STATS frame and per-kind counters kept across restarts, and the
// GPU processes the loader finds. What it decodes with (the shaper and the state it reads) is
// handed in: captureParts() builds the usual set, over a process table the caller may share.
// The frames may also come from a file (a Replay), and be written to one (a Recording).
//
// A kernel flood must not starve the rest of the sidecar (OTLP intake, MCP): the capture decodes
// at most EVENTS_PER_TURN events per turn of the event loop, then yields. Frames that wait behind
// that budget are the backlog; past SHED_BACKLOG_FRAMES for a second, or with frames waiting while
// the event loop had no idle time left over the last second (SHED_UTILIZATION: on a machine whose
// cores the flood also takes, the main thread gets a fraction of one, and the per-turn budget
// alone leaves it always runnable, answering MCP seconds late) and the capture behind (the ring
// buffer dropping records, or the watermark trailing by SHED_TRAILING_MS while kernel events
// filled the budget of at least half the turns that decoded them, of FLOOD_TURNS at least: a loop
// busy because other processes take the cores, or with app spans, or held by a start-up, while the
// events fit in their budget or take a few ms of its second, sheds nothing: it would free little of
// the loop and lose what explains its spans), the loader is told to shed in the kernel (the probes
// count what they skip), and the frames still waiting past SHED_BACKLOG_FRAMES are shed here,
// their bookkeeping records kept; both counted per kind.
// Shedding stops, a second at least after it began, once the backlog is gone and the capture is no
// longer behind (or the loop has idle time again).
// That bound is in frames, not time: a capture could still trail by seconds, and every app span
// waits for its watermark. So event records that ended more than MAX_LAG_MS before the capture
// comes to decode them are shed here too (counted per kind as shedLate, bookkeeping kept): the
// capture catches up to the present rather than decode the past, and its watermark trails by
// about that much (a stall of the main thread aside, which it catches up from at once).
import type { Meter } from '@opentelemetry/api';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { counter, gauge, observe } from '../export/metrics.js';
import type * as A from '../semconv/attributes.js';
import { EpochClock } from './clock.js';
import { CudaState } from './cuda.js';
import { Demangler } from './demangle.js';
import { BlockDevices } from './devices.js';
import { EventShaper, KIND_NAMES, SUMMARIZED, readWhole, recordBytes, type EventBatch } from './events.js';
import type { Frame } from './frames.js';
import { GpuProcesses, type GpuProcess } from './gpu-processes.js';
import { Loader, type LoaderEnd, type LoaderHealth, type LoaderMessage } from './loader.js';
import type { FrameSource, HostLookups, Recording, Replay } from './recording.js';
import {
  FrameType,
  Kind,
  LAYOUT,
  RECORD_SIZE,
  RecordError,
  coveredAt,
  decodeHello,
  decodeRecordsOf,
  decodeStats,
  decodeWatermark,
  kindAt,
  pidAt,
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
  /** An EVENTS frame's events, by column: objects are made only when asked (EventBatch.event). */
  onEvents: (events: EventBatch) => void | Promise<void>;
  /** Every kernel event that ended before this time (Unix ns) has been handed to onEvents. */
  onWatermark?: (unixNano: bigint) => void;
  /** Kernel events of this time (Unix ns) were shed, in the kernel or here: the spans of that time miss some. */
  onShed?: (fromUnixNano: bigint, toUnixNano: bigint) => void;
  onMessage: (message: LoaderMessage) => void;
  loaderPath?: string;
  /** Also write what is captured to this recording. */
  recording?: Recording;
  /** Events and drops per kind are read from here at each collection. */
  meter?: Meter;
  /**
   * The loader's clock (CLOCK_MONOTONIC, as the probes stamp records) now, against which an
   * event's lag is taken: process.hrtime, the same clock, unless a stand-in loader keeps its own.
   */
  monoNow?: () => bigint;
}

/**
 * Per thread per window, launches that returned within launchWholeUs, run-queue waits shorter
 * than runqueueWholeUs, and blocked and futex waits shorter than waitWholeUs are summed in the
 * kernel, one record per kind (cuda.launches, sched.runqueues, sched.blocked_waits,
 * futex.waits); windowMs 0 turns reduction off.
 */
export interface Reduction {
  windowMs: number;
  launchWholeUs: number;
  runqueueWholeUs: number;
  waitWholeUs: number;
}

/** The loader's defaults (bpf/filter.c). */
export const REDUCTION: Reduction = { windowMs: 10, launchWholeUs: 100, runqueueWholeUs: 100, waitWholeUs: 100 };

/** Counters per kind name: the DESIGN kinds, and cuda.register / proc.exec for bookkeeping. */
export type KindCounts = Record<string, number>;

export interface CaptureCounters {
  /** Events handed to onEvents. */
  events: KindCounts;
  /** The kernel events those stand for, by the kind of event: a summary counts as the events it sums. */
  covered: KindCounts;
  /** Ring-buffer reservations that failed in the kernel, per probe kind. */
  drops: KindCounts;
  /** Records the probes did not write while told to shed (the sidecar was behind), per kind. */
  shed: KindCounts;
  /** Records delivered but shed here, undecoded, while the sidecar was behind, per kind. */
  shedDelivered: KindCounts;
  /** Records delivered but shed here, undecoded, because they ended more than MAX_LAG_MS before, per kind. */
  shedLate: KindCounts;
  /** The kernel is told to shed now. */
  shedding: boolean;
  /** Records are being shed for their lag now. */
  sheddingLate: boolean;
  /** Times the kernel was told to shed. */
  shedEpisodes: number;
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
  /** Processes whose published active span (OTEP 4947 thread context) the probes read: their events attach exactly. */
  threadContextProcesses: number;
  /**
   * Processes found publishing one that the probes cannot read (dynamic TLS, a slot never relocated),
   * since the loader started: their events fall back to the thread rule. The loader's warning says why.
   */
  threadContextUnresolved: number;
}

const COUNTER_NAMES: ReadonlyMap<number, string> = new Map<number, string>([
  ...Object.entries(KIND_NAMES).map(([kind, name]) => [Number(kind), name] as const),
  [Kind.CUDA_REGISTER, 'cuda.register'],
  [Kind.CUDA_NAME_MORE, 'cuda.name_more'],
  [Kind.PROC_EXEC, 'proc.exec'],
  [Kind.CUDA_OP, 'cuda.op'],
  [Kind.CUDA_MAPPED, 'cuda.mapped'],
  [Kind.PROC_EXIT, 'proc.exit'],
  [Kind.CODE_MAPPED, 'code.mapped'],
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
/** Kernel events decoded and handed on per turn of the event loop, before the capture yields to I/O. */
export const EVENTS_PER_TURN = 2048;
/** Frames waiting behind the per-turn budget past which events are shed (the loader queues 64 at most). */
export const SHED_BACKLOG_FRAMES = 16;
/**
 * Frames must wait past SHED_BACKLOG_FRAMES this long before shedding starts: a pause (a full
 * collection, a slow reader of `causeway capture`'s output) is not a flood, and the ring holds it.
 */
const SHED_BEHIND_MS = 1000;
/**
 * The event loop's utilization over a second past which, with frames waiting, the kernel is told to
 * shed: the main thread was idle less than a tenth of the time, so that OTLP intake and MCP wait
 * behind kernel events for the CPU.
 */
export const SHED_UTILIZATION = 0.9;
/**
 * How far the loader's latest watermark must trail the clock for a saturated loop to shed: ten
 * of its polls. Under the whole sidecar's load on 2 shared cores the loop was over
 * SHED_UTILIZATION with the watermark 10 to 20 ms behind, and shed a second at a time for nothing.
 */
export const SHED_TRAILING_MS = 100;
/** Over how long the event loop's utilization is taken. */
const UTILIZATION_MS = 1000;
/** Once told to shed, the kernel sheds at least this long: a flood resumes the moment shedding stops. */
const SHED_AT_LEAST_MS = 1000;
/**
 * Event records that ended longer ago than this when the capture comes to decode them are shed,
 * undecoded. A span is joined once the watermark passes its end: with this, a span waits about
 * half a second at most, and a pause shorter than this (a full collection) loses nothing.
 */
export const MAX_LAG_MS = 500;
/** Turns of the event loop that decoded kernel events, and those of them whose budget the events filled. */
interface Turns {
  decoding: number;
  filled: number;
}
/**
 * Turns that decoded kernel events in a second, at least, for them to flood the loop: a loop that
 * turned fewer times was held by other work (a start-up, a stall), and the events were a few ms of
 * its second, however many of those turns they filled.
 */
export const FLOOD_TURNS = 10;
/**
 * Kernel events flood the loop when they filled the budget of at least half the turns that decoded
 * them, of FLOOD_TURNS at least: they come faster than a turn takes them. A stall's backlog drained
 * in one turn is not a flood.
 */
const flooding = ({ decoding, filled }: Turns) => decoding >= FLOOD_TURNS && 2 * filled >= decoding;
/** A count per kind (by Kind), summed. */
const overKinds = (counts: readonly number[]) => counts.reduce((a, b) => a + b, 0);
/** The records that are events (the DESIGN kinds): shedding drops only these; bookkeeping records (names, execs, libraries) are always kept. */
const EVENT_KINDS = new Set<number>(Object.keys(KIND_NAMES).map(Number));
/** The in-kernel reduction's summaries (SUMMARIZED), by record kind. */
const SUMMARIES = new Set<number>(
  Object.entries(KIND_NAMES)
    .filter(([, name]) => SUMMARIZED[name] !== undefined)
    .map(([kind]) => Number(kind)),
);

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
      '--wait-whole-us',
      String(reduction.waitWholeUs),
    );
  return args;
}

/**
 * The payload without the event records `shed` picks (given each record's offset), each counted
 * in `counts` by kind, and the times (CLOCK_MONOTONIC) from the first start to the last end of
 * those shed; bookkeeping records are kept. The payload itself and no times when none is shed.
 */
function shedRecords(
  payload: Buffer,
  counts: number[],
  shed: (at: number) => boolean,
): { kept: Buffer; shed?: { from: bigint; to: bigint } } {
  const { kind, start_ns, end_ns } = LAYOUT.cw_event.fields;
  const kept: Buffer[] = [];
  let keptFrom = 0;
  let times: { from: bigint; to: bigint } | undefined;
  for (let at = 0; at + RECORD_SIZE <= payload.length; at += RECORD_SIZE) {
    const recordKind = payload.readUInt16LE(at + kind);
    if (!EVENT_KINDS.has(recordKind) || !shed(at)) continue;
    counts[recordKind] = (counts[recordKind] ?? 0) + 1;
    const from = payload.readBigUInt64LE(at + start_ns);
    const to = payload.readBigUInt64LE(at + end_ns);
    if (times === undefined) times = { from, to };
    else {
      if (from < times.from) times.from = from;
      if (to > times.to) times.to = to;
    }
    if (at > keptFrom) kept.push(payload.subarray(keptFrom, at));
    keptFrom = at + RECORD_SIZE;
  }
  if (times === undefined) return { kept: payload };
  if (keptFrom < payload.length) kept.push(payload.subarray(keptFrom));
  return { kept: Buffer.concat(kept), shed: times };
}

function namedCounts(values: readonly number[]): KindCounts {
  const counts: KindCounts = {};
  for (const [kind, name] of COUNTER_NAMES) counts[name] = values[kind] ?? 0;
  return counts;
}

/** What a capture shows on /metrics. */
function captureInstruments() {
  return {
    events: counter('causeway_kernel_events', 'Kernel events decoded, per kind.'),
    covered: counter(
      'causeway_kernel_events_covered',
      'Kernel events captured, per kind, a summary (cuda.launches, sched.runqueues, sched.blocked_waits, futex.waits) counting as the events it sums.',
    ),
    drops: counter('causeway_kernel_drops', 'Kernel events lost to a full ring buffer, per kind.'),
    shed: counter(
      'causeway_kernel_shed',
      'Kernel events shed while the sidecar was behind, per kind: where="kernel" the probes skipped them, where="sidecar" they were delivered and not decoded.',
    ),
    shedLate: counter(
      'causeway_kernel_shed_late',
      `Kernel events delivered more than ${String(MAX_LAG_MS)} ms after they ended, shed undecoded so that capture catches up to the present, per kind.`,
    ),
    shedding: gauge('causeway_kernel_shedding', '1 while the kernel is told to shed events: the sidecar is behind.'),
    sheddingLate: gauge(
      'causeway_kernel_shedding_late',
      `1 while kernel events more than ${String(MAX_LAG_MS)} ms old are shed: capture trails the clock.`,
    ),
    shedEpisodes: counter('causeway_kernel_shed_episodes', 'Times the kernel was told to shed events.'),
    unnamed: counter(
      'causeway_cuda_kernels_unnamed',
      'Kernels registered (or, launched by handle, their handle taken) before capture started, with no symbol at the launched address: their launches carry only the function address.',
    ),
    gpu: gauge('causeway_gpu_processes', 'Processes found using CUDA (followed, their libraries probed).'),
    threadContext: gauge(
      'causeway_thread_context_processes',
      'Processes whose published active span (OpenTelemetry thread context) the probes read: their events attach exactly.',
    ),
    threadContextUnresolved: gauge(
      'causeway_thread_context_unresolved',
      'Processes found publishing an OpenTelemetry thread context the probes cannot read (dynamic TLS, never relocated), since the loader started.',
    ),
    followed: gauge('causeway_followed_processes', "Processes in the kernel's followed table (0 when following all)."),
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
  };
}

export class KernelCapture {
  /** Resolves at the first HELLO: every probe is attached. */
  readonly ready: Promise<Hello>;
  private readonly source: FrameSource;
  private readonly loader: Loader | undefined;
  private readonly gpu = new GpuProcesses();
  private resolveReady!: (hello: Hello) => void;
  /** Events handed on, and the kernel events they stand for, indexed by record kind: counted without a lookup by name per event. */
  private readonly emitted = new Array<number>(Kind.MAX).fill(0);
  private readonly covered = new Array<number>(Kind.MAX).fill(0);
  // Kernel counters restart from zero with each loader: earlier runs' totals are kept here.
  private previousRuns = {
    drops: new Array<number>(Kind.MAX).fill(0),
    shed: new Array<number>(Kind.MAX).fill(0),
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
  private readonly shedDelivered = new Array<number>(Kind.MAX).fill(0);
  private readonly shedLate = new Array<number>(Kind.MAX).fill(0);
  /** Since when records are shed for their lag, and when some last were; null while they are not. */
  private lateSince: number | null = null;
  private lateLast = 0;
  private readonly monoNow: () => bigint;
  private shedSince: number | null = null;
  /** Since when frames have waited past SHED_BACKLOG_FRAMES; null while they do not. */
  private behindSince: number | null = null;
  private shedEpisodes = 0;
  /** The loader's latest watermark (CLOCK_MONOTONIC); null before the first. */
  private watermarkMono: bigint | null = null;
  /** Whether the ring buffer dropped records between the loader's last two STATS: it is behind in the kernel. */
  private ringDropping = false;
  private eventsThisTurn = 0;
  /** The event loop's utilization at the start of the current period, and that of the last whole period. */
  private loopSince: { at: number; elu: EventLoopUtilization } | null = null;
  private loopUtilization = 0;
  /**
   * Turns of the event loop that decoded kernel events, and those of them whose budget
   * (EVENTS_PER_TURN) the events filled: in the current period, and in the last whole one.
   */
  private turns: Turns = { decoding: 0, filled: 0 };
  private turnsInPeriod: Turns = { decoding: 0, filled: 0 };

  /** From the loader, or, given a replay, from its file. */
  constructor(
    private readonly options: CaptureOptions,
    private readonly parts: CaptureParts,
    replay?: Replay,
  ) {
    this.ready = new Promise((resolve) => (this.resolveReady = resolve));
    this.monoNow = options.monoNow ?? (() => process.hrtime.bigint());
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
          // A new loader starts without shedding.
          this.shedSince = null;
          this.behindSince = null;
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
      events: this.byEventKind(this.emitted, (name) => name),
      covered: this.byEventKind(this.covered, (name) => SUMMARIZED[name] ?? name),
      drops: namedCounts(sum(this.previousRuns.drops, this.latest?.drops)),
      shed: namedCounts(sum(this.previousRuns.shed, this.latest?.shed)),
      shedDelivered: namedCounts(this.shedDelivered),
      shedLate: namedCounts(this.shedLate),
      shedding: this.shedSince !== null,
      sheddingLate: this.lateSince !== null,
      shedEpisodes: this.shedEpisodes,
      delivered: namedCounts(sum(this.previousRuns.delivered, this.latest?.events)),
      badBatches: this.badBatches,
      followed: this.latest?.followed ?? 0,
      libraries: this.latest?.libraries ?? 0,
      ringbufUsed: this.latest?.ringbufUsed ?? 0,
      gpuProcesses: this.latest?.gpuProcesses ?? 0,
      unnamedKernels: this.previousRuns.unnamedKernels + (this.latest?.unnamedKernels ?? 0),
      threadContextProcesses: this.latest?.threadContextProcesses ?? 0,
      threadContextUnresolved: this.latest?.threadContextUnresolved ?? 0,
    };
  }

  /** Per-record-kind counts of events by the kind name `named` gives each event kind; kinds never counted are left out. */
  private byEventKind(counts: readonly number[], named: (name: A.CausewayKindValue) => string): KindCounts {
    const result: KindCounts = {};
    for (const [kind, name] of Object.entries(KIND_NAMES)) {
      const n = counts[Number(kind)] ?? 0;
      if (n > 0) result[named(name)] = (result[named(name)] ?? 0) + n;
    }
    return result;
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
    observe(meter, captureInstruments(), () => {
      const {
        events,
        covered,
        drops,
        shed,
        shedDelivered,
        shedLate,
        shedding,
        sheddingLate,
        shedEpisodes,
        gpuProcesses,
        unnamedKernels,
        followed,
        threadContextProcesses,
        threadContextUnresolved,
      } = this.counters();
      const loader = this.loaderReport();
      const where = (counts: KindCounts, place: string) =>
        Object.entries(counts).map(([kind, n]) => [n, { kind, where: place }] as [number, Record<string, string>]);
      return {
        events: perKind(events),
        covered: perKind(covered),
        drops: perKind(drops),
        shed: [...where(shed, 'kernel'), ...where(shedDelivered, 'sidecar')],
        shedLate: perKind(shedLate),
        shedding: Number(shedding),
        sheddingLate: Number(sheddingLate),
        shedEpisodes,
        unnamed: unnamedKernels,
        gpu: gpuProcesses,
        threadContext: threadContextProcesses,
        threadContextUnresolved,
        followed,
        forgotten: loader?.followsForgotten,
        up: loader === undefined ? undefined : Number(loader.running),
        restarts: loader?.restarts,
        failures: loader?.failuresInARow,
        gap: loader === undefined ? undefined : loader.gapMs / 1000,
        lost: loader?.eventsLostInGaps,
      };
    });
  }

  private async frame(frame: Frame): Promise<void> {
    this.lastFrameAt = Date.now();
    // At every frame: while the kernel sheds, EVENTS frames stop, and WATERMARK frames say it caught up.
    this.shedOrCatchUp();
    // Before a watermark joins the spans of the time shed so far.
    if (this.shedSince !== null) this.kernelShed(this.shedSince, this.lastFrameAt);
    this.caughtUpLate(this.lastFrameAt);
    switch (frame.type) {
      case FrameType.HELLO:
        this.hello(frame.payload);
        break;
      case FrameType.STATS: {
        const stats = decodeStats(frame.payload);
        this.parts.clock.update(stats.monoNs, stats.realNs);
        // A loader's counts start at zero: its first STATS compares with nothing.
        this.ringDropping = this.latest !== null && overKinds(stats.drops) > overKinds(this.latest.drops);
        this.latest = stats;
        break;
      }
      case FrameType.EVENTS:
        await this.events(this.shedIfBehind(this.shedIfLate(frame.payload)));
        break;
      case FrameType.WATERMARK:
        this.watermark(frame.payload);
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
        shed: this.previousRuns.shed.map((value, kind) => value + (latest.shed[kind] ?? 0)),
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

  private watermark(payload: Buffer): void {
    let mono: bigint;
    try {
      mono = decodeWatermark(payload);
    } catch (error) {
      if (!(error instanceof RecordError)) throw error;
      this.options.onMessage({ level: 'error', msg: error.message, source: 'supervisor', fields: {} });
      return;
    }
    this.watermarkMono = mono;
    this.options.onWatermark?.(this.parts.clock.toUnixNano(mono));
  }

  /**
   * Tells the loader to start shedding when frames wait behind the budget, or the busy loop lets
   * capture fall behind; and to stop once none wait and capture has caught up, or the loop has idle time.
   */
  private shedOrCatchUp(): void {
    const loader = this.loader;
    if (loader === undefined) return;
    const backlog = loader.backlog - 1; // the frame being handled is one of them
    const now = Date.now();
    const saturated = this.loopSaturated(now);
    const trailing = this.trailingMs();
    // Capture behind: the ring dropping what it cannot hold, or the watermark trailing while kernel
    // events flood the loop (one kept busy by other work is not flooded by them).
    const behind = this.ringDropping || (trailing >= SHED_TRAILING_MS && flooding(this.turnsInPeriod));
    if (backlog < SHED_BACKLOG_FRAMES) this.behindSince = null;
    else this.behindSince ??= now;
    if (
      this.shedSince === null &&
      ((this.behindSince !== null && now - this.behindSince >= SHED_BEHIND_MS) || (saturated && backlog > 0 && behind))
    ) {
      this.shedSince = now;
      this.shedEpisodes++;
      loader.shed(true);
      this.options.onMessage({
        level: 'warn',
        msg: `kernel events are being shed: ${backlog} frames wait behind the ${EVENTS_PER_TURN}-events-per-turn budget, the event loop ${Math.round(100 * this.loopUtilization)}% busy, kernel events filling ${this.turnsInPeriod.filled} of the ${this.turnsInPeriod.decoding} turns that decoded them, the watermark ${trailing === Infinity ? 'not come yet' : `${Math.round(trailing)} ms behind`}`,
        source: 'supervisor',
        fields: {
          event: 'shed',
          on: true,
          backlog,
          loopUtilization: this.loopUtilization,
          turnsDecoding: this.turnsInPeriod.decoding,
          turnsFilled: this.turnsInPeriod.filled,
          trailingMs: trailing,
        },
      });
    } else if (
      this.shedSince !== null &&
      backlog === 0 &&
      (!saturated || !behind) &&
      now - this.shedSince >= SHED_AT_LEAST_MS
    ) {
      this.kernelShed(this.shedSince, now);
      this.shedSince = null;
      loader.shed(false);
      const { shed, shedDelivered } = this.counters();
      const total = (counts: KindCounts) => overKinds(Object.values(counts));
      this.options.onMessage({
        level: 'info',
        msg: `caught up: kernel events are no longer shed (${total(shed)} shed in the kernel, ${total(shedDelivered)} here, so far)`,
        source: 'supervisor',
        fields: { event: 'shed', on: false },
      });
    }
  }

  /** The kernel shed events from `since` to `until` (Date.now() times), about: the loader takes a turn of its loop to hear. */
  private kernelShed(since: number, until: number): void {
    this.options.onShed?.(BigInt(since) * 1_000_000n, BigInt(until) * 1_000_000n);
  }

  /** How far the loader's latest watermark trails the clock, in ms; infinite before the first. */
  private trailingMs(): number {
    return this.watermarkMono === null ? Infinity : Number(this.monoNow() - this.watermarkMono) / 1e6;
  }

  /** Whether the event loop's utilization over the last whole period was past SHED_UTILIZATION. */
  private loopSaturated(now: number): boolean {
    if (this.loopSince === null) this.loopSince = { at: now, elu: performance.eventLoopUtilization() };
    else if (now - this.loopSince.at >= UTILIZATION_MS) {
      const elu = performance.eventLoopUtilization();
      this.loopUtilization = performance.eventLoopUtilization(elu, this.loopSince.elu).utilization;
      this.loopSince = { at: now, elu };
      this.turnsInPeriod = this.turns;
      this.turns = { decoding: 0, filled: 0 };
    }
    return this.loopUtilization >= SHED_UTILIZATION;
  }

  /** While shedding and still behind, an EVENTS frame's event records are shed here (counted); its bookkeeping records are kept. */
  private shedIfBehind(payload: Buffer): Buffer {
    if (this.shedSince === null || (this.loader?.backlog ?? 0) - 1 < SHED_BACKLOG_FRAMES) return payload;
    return this.shedTimes(shedRecords(payload, this.shedDelivered, () => true));
  }

  /** Tells onShed the times of the records shed, on the resampled clock; returns those kept. */
  private shedTimes({ kept, shed }: ReturnType<typeof shedRecords>): Buffer {
    if (shed !== undefined) {
      const { clock } = this.parts;
      this.options.onShed?.(clock.toUnixNano(shed.from), clock.toUnixNano(shed.to));
    }
    return kept;
  }

  /**
   * An EVENTS frame's event records that ended more than MAX_LAG_MS ago are shed (counted); its
   * bookkeeping records are kept. A summary is written when its window closes, for a thread that
   * slept long after its last wait ended (README, In-kernel reduction): an old one is shed only
   * when its frame's newest event is late too, that is when capture trails. A replay decodes its
   * past: only a live loader's lag is bounded.
   */
  private shedIfLate(payload: Buffer): Buffer {
    if (this.loader === undefined) return payload;
    // Times as doubles, not a BigInt per record: past 2^53 ns (104 days up) they round to a few ns.
    const now = Number(this.monoNow());
    const before = now - MAX_LAG_MS * 1e6;
    const { kind, end_ns: end } = LAYOUT.cw_event.fields;
    const endOf = (at: number) => payload.readUInt32LE(at + end + 4) * 2 ** 32 + payload.readUInt32LE(at + end);
    let newest = -Infinity;
    for (let at = 0; at + RECORD_SIZE <= payload.length; at += RECORD_SIZE)
      if (EVENT_KINDS.has(payload.readUInt16LE(at + kind))) newest = Math.max(newest, endOf(at));
    const trailing = newest < before;
    let oldest = now;
    const kept = this.shedTimes(
      shedRecords(payload, this.shedLate, (at) => {
        const ended = endOf(at);
        if (ended >= before || (!trailing && SUMMARIES.has(payload.readUInt16LE(at + kind)))) return false;
        if (ended < oldest) oldest = ended;
        return true;
      }),
    );
    if (kept === payload) return payload;
    this.lateLast = Date.now();
    if (this.lateSince === null) {
      this.lateSince = this.lateLast;
      const lagMs = Math.round((now - oldest) / 1e6);
      this.options.onMessage({
        level: 'warn',
        msg: `kernel events more than ${String(MAX_LAG_MS)} ms old are being shed: capture trails the clock by ${String(lagMs)} ms`,
        source: 'supervisor',
        fields: { event: 'shed_late', on: true, lagMs },
      });
    }
    return kept;
  }

  /** Shedding for lag is over once no record was late for SHED_AT_LEAST_MS (checked at every frame: STATS come each second). */
  private caughtUpLate(now: number): void {
    if (this.lateSince === null || now - this.lateLast < SHED_AT_LEAST_MS) return;
    this.lateSince = null;
    const shed = overKinds(this.shedLate);
    this.options.onMessage({
      level: 'info',
      msg: `caught up: kernel events are within ${String(MAX_LAG_MS)} ms of the clock again (${String(shed)} shed for their lag so far)`,
      source: 'supervisor',
      fields: { event: 'shed_late', on: false },
    });
  }

  /** Counts events against this turn's budget; past it, waits for the next turn, so that I/O runs between. */
  private async spend(events: number): Promise<void> {
    if (this.eventsThisTurn === 0) {
      this.turns.decoding++;
      setImmediate(() => {
        this.eventsThisTurn = 0;
      });
    }
    const before = this.eventsThisTurn;
    this.eventsThisTurn += events;
    if (this.eventsThisTurn < EVENTS_PER_TURN) return;
    if (before < EVENTS_PER_TURN) this.turns.filled++;
    await new Promise((resolve) => setImmediate(resolve));
  }

  private async events(payload: Buffer): Promise<void> {
    let records;
    try {
      records = decodeRecordsOf(payload, readWhole);
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
    await this.parts.cuda.learnNames(records, payload);
    const bytes = recordBytes(payload);
    const batch = this.parts.shaper.shape(bytes, records);
    for (let at = 0; at < payload.length; at += RECORD_SIZE) {
      const kind = kindAt(bytes.view, at);
      if (kind === Kind.PROC_EXIT) this.source.processExited(pidAt(bytes.view, at));
      if (!EVENT_KINDS.has(kind)) continue;
      this.emitted[kind] = (this.emitted[kind] ?? 0) + 1;
      this.covered[kind] = (this.covered[kind] ?? 0) + coveredAt(bytes.view, at);
    }
    if (batch.length > 0) await this.options.onEvents(batch);
    await this.spend(records.length);
  }
}
