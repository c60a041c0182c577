// Runs the C loader (bpf/build/causeway-loader) and keeps it running: frames from its
// stdout are handed on in order, with backpressure (a slow consumer pauses the pipe, the
// ring buffer fills, and the kernel counts drops: never silent loss); its MESSAGE frames
// and stderr become log lines; an unexpected exit (or, once it has said hello, the end of its
// output) restarts it with exponential backoff and replays what it was told; exit code 2
// means it cannot run at all, so supervision stops.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { loaderPath } from '../install.js';
import { FrameReader, type Frame } from './frames.js';
import { Lru } from './lru.js';
import { runningThreadDir, statFields } from './processes.js';
import { FrameType } from './record.js';

export interface LoaderMessage {
  level: 'info' | 'warn' | 'error';
  msg: string;
  /** `loader` for its MESSAGE frames, `stderr` for its stderr lines, `supervisor` for ours. */
  source: 'loader' | 'stderr' | 'supervisor';
  /** The MESSAGE frame's other fields, such as event, path, pid, probes. */
  fields: Record<string, unknown>;
}

export interface LoaderEnd {
  /** Null when stopped on request; the one-line reason when the loader cannot run. */
  failure: string | null;
}

/** How supervision is going: what `status` and /metrics say about the loader. */
export interface LoaderHealth {
  /** A loader process runs; false while one is awaited after an exit, and once supervision is over. */
  running: boolean;
  pid: number | null;
  restarts: number;
  /** Exits since the last run that lasted HEALTHY_RUN_MS: above zero, the loader keeps failing. */
  failuresInARow: number;
  /** How the last loader that exited ended, e.g. `on SIGKILL` or `with code 1`; null before any exit. */
  lastExit: string | null;
  /** Followed processes forgotten (and unfollowed), the least recently followed first, past MAX_FOLLOWED. */
  followsForgotten: number;
}

export interface LoaderOptions {
  args: string[];
  /** HELLO, EVENTS and STATS frames, one at a time: the next waits for the promise. */
  onFrame: (frame: Frame) => void | Promise<void>;
  onMessage: (message: LoaderMessage) => void;
  /** Each time a loader process is started (again, after a restart). */
  onStart?: () => void;
  /** Each unexpected exit or end of output, before the restart is scheduled. */
  onExit?: () => void;
  path?: string;
  backoffMs?: { initial: number; max: number };
  /** When a running process started (default: `startTime`, from /proc); a test's stand-in. */
  startTime?: (pid: number) => string | undefined;
}

/**
 * When process `pid` started (clock ticks after boot, /proc/PID/stat), if it runs: undefined when
 * it has no /proc entry or is a zombie (one that has exited and not been reaped: its exit, which
 * takes it out of the kernel's followed table, has happened). A zombie main thread with other
 * threads (it called pthread_exit) is a process that runs on in them. A pid with another start
 * time than before is another process.
 */
export function startTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // The state, then the 19th field after it is the start time.
  const fields = statFields(stat);
  const exited = fields[0] === 'X' || (fields[0] === 'Z' && runningThreadDir(`/proc/${pid}`) === undefined);
  return exited ? undefined : fields[19];
}

/** Exit code with which the loader says it cannot run (not root, no BTF, ...). */
export const EXIT_CANNOT_RUN = 2;
/** A run this long counts as healthy: the next restart starts from the initial backoff. */
const HEALTHY_RUN_MS = 30_000;
const STOP_GRACE_MS = 5_000;
/** Frames queued for the consumer beyond which the loader's stdout is paused. */
const PAUSE_AT = 64;
const STDERR_LINE_MAX = 4096;
/**
 * Processes followed at most, as many as the kernel's followed table holds (CW_MAX_FOLLOWED in
 * bpf/causeway.h): those followed longest ago, most likely gone, are forgotten first.
 */
export const MAX_FOLLOWED = 16_384;

/** A MESSAGE frame's payload; one that is not a JSON object becomes a warning saying so. */
export function parseMessage(payload: Buffer): LoaderMessage {
  const text = payload.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return {
      level: 'warn',
      msg: `unparseable MESSAGE frame from the loader: ${text.slice(0, 200)}`,
      source: 'supervisor',
      fields: {},
    };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return {
      level: 'warn',
      msg: `MESSAGE frame is not a JSON object: ${text.slice(0, 200)}`,
      source: 'supervisor',
      fields: {},
    };
  }
  const { level, msg, ...fields } = parsed as Record<string, unknown>;
  return {
    level: level === 'error' || level === 'warn' ? level : 'info',
    msg: typeof msg === 'string' ? msg : JSON.stringify(fields),
    source: 'loader',
    fields,
  };
}

export class Loader {
  /** Settles once supervision is over: stopped, or the loader cannot run. */
  readonly ended: Promise<LoaderEnd>;
  private resolveEnded!: (end: LoaderEnd) => void;
  private child: ChildProcessWithoutNullStreams | null = null;
  private stopping = false;
  private over = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private backoff: number;
  private lastError: string | null = null;
  private startedAt = 0;
  private restarts = 0;
  private failuresInARow = 0;
  private lastExit: string | null = null;
  private queue: Promise<void> = Promise.resolve();
  private queued = 0;
  // What the loader was told since it started, replayed after a restart; a followed pid with
  // its process's start time.
  private readonly followed = new Lru<number, string>(MAX_FOLLOWED);
  private followsForgotten = 0;
  private readonly comms = new Set<string>();
  private readonly minimums = new Map<string, number>();
  private readonly libraries = new Set<string>();
  private readonly startTime: (pid: number) => string | undefined;

  constructor(private readonly options: LoaderOptions) {
    this.startTime = options.startTime ?? startTime;
    this.backoff = options.backoffMs?.initial ?? 500;
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve));
  }

  /** The running loader's pid, if one runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  health(): LoaderHealth {
    const running = this.child !== null;
    // A loader running past HEALTHY_RUN_MS has recovered, even before it exits.
    const recovered = running && Date.now() - this.startedAt >= HEALTHY_RUN_MS;
    return {
      running,
      pid: this.child?.pid ?? null,
      restarts: this.restarts,
      failuresInARow: recovered ? 0 : this.failuresInARow,
      lastExit: this.lastExit,
      followsForgotten: this.followsForgotten,
    };
  }

  start(): void {
    if (this.over) return;
    const path = this.options.path ?? loaderPath;
    if (!existsSync(path)) {
      this.end(`the loader is not built (${path} is missing): run \`npm run build\``);
      return;
    }
    this.options.onStart?.();
    const child = spawn(path, this.options.args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const startedAt = Date.now();
    this.startedAt = startedAt;
    const reader = new FrameReader();
    this.child = child;
    this.lastError = null;
    child.stdin.on('error', () => {
      // EPIPE once the loader died: its exit is handled below.
    });
    let said = false;
    let replaced = false;
    child.stdout.on('data', (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = reader.push(chunk);
      } catch (error) {
        this.log('error', `${(error as Error).message}; killing the loader`);
        child.kill('SIGKILL');
        return;
      }
      for (const frame of frames) {
        if (frame.type === FrameType.HELLO) said = true;
        this.enqueue(child, frame);
      }
    });
    // A dying loader's output ends long before its exit: the kernel detaches its uprobes one RCU
    // grace period at a time (tens of seconds on a busy machine). One that had said hello is
    // replaced once its output ends; its exit status comes later, and is logged then.
    child.stdout.on('end', () => {
      if (!said || this.stopping || this.over) return;
      replaced = true;
      this.child = null;
      void this.queue.then(() => {
        this.exited('output ended', Date.now() - startedAt, reader.pendingBytes);
      });
    });
    this.readStderr(child);
    child.on('error', (error) => {
      this.end(`cannot start the loader ${path}: ${error.message}`);
    });
    child.on('close', (code, signal) => {
      this.lastExit = signal === null ? `with code ${String(code)}` : `on ${signal}`;
      if (replaced) {
        this.log('warn', `the loader replaced after its output ended exited ${this.lastExit}`);
        return;
      }
      this.child = null;
      void this.queue.then(() => {
        this.exited({ code }, Date.now() - startedAt, reader.pendingBytes);
      });
    });
    for (const command of this.replay()) this.write(command);
  }

  /**
   * Follows a process; one already followed is not sent again (a restart replays them all). Past
   * MAX_FOLLOWED, the one followed longest ago is unfollowed and counted.
   */
  follow(pid: number): void {
    if (!Number.isInteger(pid) || pid <= 0) throw new RangeError(`not a pid: ${pid}`);
    if (this.followed.get(pid) !== undefined) return;
    // A late span of a process that exited: its pid, followed, would follow the next process given it.
    const started = this.startTime(pid);
    if (started === undefined) return;
    const forgotten = this.followed.set(pid, started);
    if (forgotten !== undefined) {
      // First, so that the kernel's table has room.
      this.followsForgotten++;
      this.write(`unfollow ${forgotten}`);
    }
    this.write(`follow ${pid}`);
  }

  unfollow(pid: number): void {
    this.followed.delete(pid);
    this.write(`unfollow ${pid}`);
  }

  /**
   * A followed process exited: the kernel took it out of its table, and a new process given its
   * pid is followed again when a span names it (kept, following it would be a no-op).
   */
  processExited(pid: number): void {
    this.followed.delete(pid);
  }

  comm(name: string): void {
    this.checkWord('comm', name);
    this.comms.add(name);
    this.write(`comm ${name}`);
  }

  /** Sets a kind's minimum duration, in microseconds, below which the kernel drops events. */
  min(kind: string, microseconds: number): void {
    this.checkWord('kind', kind);
    if (!Number.isInteger(microseconds) || microseconds < 0)
      throw new RangeError(`not a duration in microseconds: ${microseconds}`);
    this.minimums.set(kind, microseconds);
    this.write(`min ${kind} ${microseconds}`);
  }

  attach(path: string): void {
    this.checkWord('path', path);
    this.libraries.add(path);
    this.write(`attach ${path}`);
  }

  /** Frames received and not yet handled, the one being handled included. */
  get backlog(): number {
    return this.queued;
  }

  /**
   * Tells the running loader to shed event records in the kernel (counted per kind), or to stop.
   * Not replayed: a restarted loader starts without shedding.
   */
  shed(on: boolean): void {
    this.write(`shed ${on ? 'on' : 'off'}`);
  }

  /** Asks for a STATS frame now. */
  stats(): void {
    this.write('stats');
  }

  /** SIGTERM, then SIGKILL after a grace period; resolves once its last frames are handed on. */
  async stop(): Promise<LoaderEnd> {
    this.stopping = true;
    if (this.restartTimer !== null) {
      clearTimeout(this.restartTimer);
      this.restartTimer = null;
      this.end(null);
    }
    const child = this.child;
    if (child === null) {
      this.end(null);
      return this.ended;
    }
    child.kill('SIGTERM');
    const kill = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    const end = await this.ended;
    clearTimeout(kill);
    return end;
  }

  private enqueue(child: ChildProcessWithoutNullStreams, frame: Frame): void {
    this.queued++;
    if (this.queued === PAUSE_AT) child.stdout.pause();
    this.queue = this.queue
      .then(async () => {
        if (frame.type === FrameType.MESSAGE) this.message(parseMessage(frame.payload));
        else await this.options.onFrame(frame);
      })
      .catch((error: unknown) => {
        this.log(
          'error',
          `handling a loader frame failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
        );
      })
      .finally(() => {
        this.queued--;
        if (this.queued === PAUSE_AT / 2 && child.stdout.isPaused()) child.stdout.resume();
      });
  }

  private readStderr(child: ChildProcessWithoutNullStreams): void {
    let partial = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text: string) => {
      const lines = (partial + text).split('\n');
      partial = (lines.pop() ?? '').slice(0, STDERR_LINE_MAX);
      for (const line of lines) {
        // The loader writes its fatal reason both as a MESSAGE and on stderr: say it once.
        if (line.trim() === '' || line === this.lastError) continue;
        this.message({ level: 'warn', msg: line, source: 'stderr', fields: {} });
      }
    });
  }

  private message(message: LoaderMessage): void {
    if (message.level === 'error' && message.source === 'loader') this.lastError = message.msg;
    this.options.onMessage(message);
  }

  private log(level: LoaderMessage['level'], msg: string): void {
    this.options.onMessage({ level, msg, source: 'supervisor', fields: {} });
  }

  /** A loader's exit, or the end of its output (its exit status not known yet). */
  private exited(end: { code: number | null } | 'output ended', ranMs: number, pendingBytes: number): void {
    if (pendingBytes > 0) this.log('warn', `the loader's output ended inside a frame (${pendingBytes} bytes lost)`);
    if (this.over) return;
    if (this.stopping) {
      this.end(null);
      return;
    }
    if (end !== 'output ended' && end.code === EXIT_CANNOT_RUN) {
      this.end(this.lastError ?? 'the loader cannot run (exit code 2) and gave no reason');
      return;
    }
    if (ranMs >= HEALTHY_RUN_MS) {
      this.backoff = this.options.backoffMs?.initial ?? 500;
      this.failuresInARow = 0;
    }
    this.failuresInARow++;
    this.options.onExit?.();
    const how = end === 'output ended' ? "'s output ended" : ` exited ${String(this.lastExit)}`;
    this.log(
      'warn',
      `the loader${how}${this.lastError === null ? '' : ` (${this.lastError})`}; restarting in ${this.backoff} ms (${this.failuresInARow} exits in a row)`,
    );
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      this.restarts++;
      this.start();
    }, this.backoff);
    this.backoff = Math.min(this.backoff * 2, this.options.backoffMs?.max ?? 30_000);
  }

  private end(failure: string | null): void {
    if (this.over) return;
    this.over = true;
    if (failure !== null) this.log('error', failure);
    this.resolveEnded({ failure });
  }

  private replay(): string[] {
    // A process that exited while no loader ran left no exit record: its pid is not followed
    // again, whether it is free or another process's now.
    for (const [pid, started] of [...this.followed.entries()])
      if (this.startTime(pid) !== started) this.followed.delete(pid);
    return [
      ...Array.from(this.followed.keys(), (pid) => `follow ${pid}`),
      ...Array.from(this.comms, (name) => `comm ${name}`),
      ...Array.from(this.minimums, ([kind, us]) => `min ${kind} ${us}`),
      ...Array.from(this.libraries, (path) => `attach ${path}`),
    ];
  }

  private write(command: string): void {
    this.child?.stdin.write(`${command}\n`);
  }

  private checkWord(what: string, value: string): void {
    if (value === '' || /[\n\r]/.test(value)) throw new RangeError(`invalid ${what}: ${JSON.stringify(value)}`);
  }
}
