// Capture to a file and back. A recording is the loader's frame stream as the capture read it
// (HELLO, STATS, EVENTS, MESSAGE), plus CONTEXT frames with what the live capture read from
// this machine to shape those events (process metadata, block device names, its own pids), each
// written before the EVENTS frame that needed it. Kernel names need none: they travel in the
// records (registrations, including those the loader writes for stubs it named). Replaying the file through
// the same decoder gives the same events, on any machine. The loader's raw output
// (`causeway-loader ... > frames.bin`, e.g. carried from a GPU machine) replays too: without
// CONTEXT frames, events say only what the records themselves say.
import { closeSync, createReadStream, openSync, writeSync } from 'node:fs';
import { majorMinor, type BlockDevices } from './devices.js';
import { FrameReader, type Frame } from './frames.js';
import { parseMessage, type LoaderEnd, type LoaderMessage } from './loader.js';
import type { ProcessInfo, ProcessTable } from './processes.js';
import { FrameType, LAYOUT } from './record.js';
import { SelfPids } from './self-pids.js';

/** What events are shaped with that comes from this machine (/proc, /sys). */
export interface HostLookups {
  processes: Pick<ProcessTable, 'get' | 'forget'>;
  devices: Pick<BlockDevices, 'name'>;
}

type ContextEntry = { process: ProcessInfo } | { device: { dev: number; name: string } } | { self: number };

/** Where frames come from (the loader, or a file), and what a capture tells it. */
export interface FrameSource {
  start(): void;
  stop(): Promise<LoaderEnd>;
  readonly ended: Promise<LoaderEnd>;
  /** The loader's pid, for a live source. */
  readonly pid: number | undefined;
  follow(pid: number): void;
  /** A followed process exited (its exit record was read): its pid is free for a new process. */
  processExited(pid: number): void;
}

export interface FrameHandlers {
  /** HELLO, EVENTS and STATS frames, one at a time: the next waits for the promise. */
  onFrame: (frame: Frame) => void | Promise<void>;
  onMessage: (message: LoaderMessage) => void;
}

function frameBytes(type: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(LAYOUT.cw_frame.size);
  header.writeUInt32LE(type, LAYOUT.cw_frame.fields.type);
  header.writeUInt32LE(payload.length, LAYOUT.cw_frame.fields.size);
  return Buffer.concat([header, payload]);
}

/** Writes a live capture to a file: its frames, and the context each EVENTS frame was shaped with. */
export class Recording {
  private fd: number | undefined;
  private pending: ContextEntry[] = [];
  private readonly processesNoted = new Set<number>();
  private readonly devicesNoted = new Set<number>();

  constructor(path: string) {
    this.fd = openSync(path, 'w');
    this.note({ self: process.pid });
  }

  /** The live lookups, each answer noted for the recording the first time it is given. */
  lookups(live: HostLookups): HostLookups {
    return {
      processes: {
        get: (pid) => {
          const info = live.processes.get(pid);
          if (!this.processesNoted.has(pid)) {
            this.processesNoted.add(pid);
            this.note({ process: info });
          }
          return info;
        },
        forget: (pid) => {
          this.processesNoted.delete(pid);
          live.processes.forget(pid);
        },
      },
      devices: {
        name: (dev) => {
          const name = live.devices.name(dev);
          if (!this.devicesNoted.has(dev)) {
            this.devicesNoted.add(dev);
            this.note({ device: { dev, name } });
          }
          return name;
        },
      },
    };
  }

  /** One of Causeway's own processes (a loader it started). */
  self(pid: number): void {
    this.note({ self: pid });
  }

  /** Writes a frame, after the context noted since the last one. */
  frame(type: number, payload: Buffer): void {
    const context = this.pending.map((entry) => frameBytes(FrameType.CONTEXT, Buffer.from(JSON.stringify(entry))));
    this.pending = [];
    if (this.fd === undefined) throw new Error('a frame after the recording was closed');
    writeSync(this.fd, Buffer.concat([...context, frameBytes(type, payload)]));
  }

  /** Closes the file; again is a no-op (a capture may be stopped twice). */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private note(entry: ContextEntry): void {
    this.pending.push(entry);
  }
}

/** The context a replay shapes events with: what the recording says, never this machine. */
class RecordedHost implements HostLookups {
  readonly self = new SelfPids(-1);
  private readonly processInfo = new Map<number, ProcessInfo>();
  private readonly deviceNames = new Map<number, string>();

  readonly processes = {
    get: (pid: number): ProcessInfo => this.processInfo.get(pid) ?? { pid },
    // The recording says again what a pid is after an exec.
    forget: () => undefined,
  };
  readonly devices = {
    name: (dev: number): string => this.deviceNames.get(dev) ?? majorMinor(dev),
  };

  add(entry: ContextEntry): void {
    if ('process' in entry) this.processInfo.set(entry.process.pid, entry.process);
    else if ('device' in entry) this.deviceNames.set(entry.device.dev, entry.device.name);
    else this.self.addLoader(entry.self);
  }
}

/** Frames from a file, in order, each handled before the next is read. */
export class Replay implements FrameSource {
  readonly ended: Promise<LoaderEnd>;
  readonly pid = undefined;
  /** The recorded context: hand it to captureParts. */
  readonly host = new RecordedHost();
  private resolveEnded!: (end: LoaderEnd) => void;
  private stopped = false;
  private handlers: FrameHandlers | undefined;

  constructor(private readonly path: string) {
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve));
  }

  /** Where the frames go: set by the capture before it starts. */
  connect(handlers: FrameHandlers): this {
    this.handlers = handlers;
    return this;
  }

  start(): void {
    this.read().then(
      () => {
        this.resolveEnded({ failure: null });
      },
      (error: unknown) => {
        const failure = `cannot replay ${this.path}: ${(error as Error).message}`;
        this.handlers?.onMessage({ level: 'error', msg: failure, source: 'supervisor', fields: {} });
        this.resolveEnded({ failure });
      },
    );
  }

  stop(): Promise<LoaderEnd> {
    this.stopped = true;
    return this.ended;
  }

  /** A recording follows nothing: what it holds is all there is. */
  follow(): void {
    return undefined;
  }

  processExited(): void {
    return undefined;
  }

  private async read(): Promise<void> {
    const handlers = this.handlers;
    if (handlers === undefined) throw new Error('a replay needs its handlers before it starts');
    const reader = new FrameReader();
    for await (const chunk of createReadStream(this.path)) {
      for (const frame of reader.push(chunk as Buffer)) {
        if (this.stopped) return;
        if (frame.type === FrameType.CONTEXT) this.host.add(JSON.parse(frame.payload.toString('utf8')) as ContextEntry);
        else if (frame.type === FrameType.MESSAGE) handlers.onMessage(parseMessage(frame.payload));
        else await handlers.onFrame(frame);
      }
    }
    if (reader.pendingBytes > 0) throw new Error(`the file ends inside a frame (${reader.pendingBytes} bytes left)`);
  }
}
