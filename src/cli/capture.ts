// `causeway capture`: kernel events as JSON lines or a live table on stdout; progress and
// the closing summary on stderr.
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as A from '../semconv/attributes.js';
import {
  KernelCapture,
  MAX_LAG_MS,
  REDUCTION,
  captureParts,
  type CaptureCounters,
  type CaptureOptions,
} from '../kernel/capture.js';
import { BlockDevices } from '../kernel/devices.js';
import { strings, type KernelEvent } from '../kernel/events.js';
import { holderComm, runqueueParts } from '../kernel/holders.js';
import type { LoaderMessage } from '../kernel/loader.js';
import { ProcessTable } from '../kernel/processes.js';
import type { Hello } from '../kernel/record.js';
import { Recording, Replay } from '../kernel/recording.js';
import { UsageError, nonNegativeInteger, positiveInteger, positiveNumber } from './usage.js';

export const CAPTURE_HELP = `Usage: causeway capture [--json] [--pid PID]... [--comm NAME]... [--lib PATH]...
                        [--duration SECONDS] [--min-duration-us N] [--ringbuf-mb N]
                        [--reduce-window-ms N] [--launch-whole-us N] [--runqueue-whole-us N]
                        [--wait-whole-us N] [--record FILE]
       causeway capture [--json] --replay FILE

Captures kernel events (cuda.launch, cuda.sync, cuda.memcpy, cuda.malloc,
sched.runqueue, sched.blocked, futex.wait, block.io, tcp.retransmit) with eBPF
and prints them as they arrive. Needs root (see \`causeway doctor\`).

Without --pid and --comm every process is followed. Every process using CUDA is
found and followed either way, running or started later, its libraries probed,
whether or not it sends spans: a GPU is shared, and its other users matter.

Options:
  --json               one JSON object per line per event:
                       {"kind","pid","tid","comm","start_unix_nano","end_unix_nano","attributes"}
                       (times are decimal strings of Unix epoch nanoseconds; end equals
                       start for point events; attribute names are in semconv/README.md);
                       without it, a readable table
  --pid PID            follow this process (repeatable); one not running is not followed,
                       with a warning
  --comm NAME          follow processes with this command name, now and as they start (repeatable)
  --lib PATH           also probe this CUDA library or executable (repeatable)
  --duration SECONDS   stop after this long (default: until Ctrl-C or SIGTERM)
  --min-duration-us N  drop scheduler, futex and block intervals shorter than N
                       microseconds, in the kernel (CUDA calls are never dropped: even
                       a short sync says which work completed)
  --ringbuf-mb N       ring-buffer size in MiB, a power of two (default 16); when
                       it overflows, the drops are counted in the summary
  --reduce-window-ms N in-kernel reduction: per thread, per window of N ms, launches
                       that returned at once (within --launch-whole-us) are summed
                       into one cuda.launches event (count, kernels and their counts,
                       stream), run-queue waits shorter than --runqueue-whole-us into
                       one sched.runqueues event (count, total, longest), and blocked
                       and futex waits shorter than --wait-whole-us into one
                       sched.blocked_waits and one futex.waits event (count, total,
                       longest, the longest one's waker); the others, and the first
                       of each window, are kept whole. 0 turns it off (default 10)
  --launch-whole-us N  a launch call this long (it blocked) or a failed one is kept
                       whole (default 100)
  --runqueue-whole-us N a run-queue wait this long is kept whole, with the tasks that
                       held the CPU (default 100)
  --wait-whole-us N    a blocked or futex wait this long is kept whole, with its waker
                       (default 100)
  --record FILE        also write what is captured to FILE, for --replay
  --replay FILE        decode FILE instead of capturing (no root needed): a --record
                       file gives the same events again; the loader's raw output
                       (bpf/build/causeway-loader ... > FILE) gives the events its
                       records say, without process metadata
  -h, --help           this help

Progress goes to stderr, and on exit a summary: events per kind, ring-buffer
drops per probe kind, and kernels that could not be named (registered before
capture started, their host stub without a symbol). Exit status 0 after a
capture, 1 when capture cannot run.
`;

const ms = (ns: bigint) => Number(ns) / 1e6;

/** Waits until a full stdout can take more, or is gone (its error is handled elsewhere). */
function writable(out: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      for (const event of ['drain', 'close', 'error']) out.off(event, done);
      resolve();
    };
    for (const event of ['drain', 'close', 'error']) out.once(event, done);
  });
}

function toJson(event: KernelEvent): string {
  return JSON.stringify({
    kind: event.kind,
    pid: event.pid,
    tid: event.tid,
    comm: event.comm,
    start_unix_nano: event.startUnixNano.toString(),
    end_unix_nano: event.endUnixNano.toString(),
    attributes: event.attributes,
    ...(event.spanContext === undefined
      ? {}
      : { span_context: { trace_id: event.spanContext.traceId, span_id: event.spanContext.spanId } }),
  });
}

function bytes(n: unknown): string {
  if (typeof n !== 'number') return '?B';
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(1)}GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)}MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)}KiB`;
  return `${n}B`;
}

const dims = (value: unknown) => (Array.isArray(value) ? value.join('x') : '?');

function who(a: KernelEvent['attributes'], pid: string, tid: string, comm: string): string {
  return a[tid] === undefined ? '-' : `${String(a[comm])} ${String(a[pid])}/${String(a[tid])}`;
}

/** Every part of a run-queue wait, as the metric credits it: each holder its on-CPU time, then the rest by why. */
function heldBy(event: KernelEvent): string {
  const { holders, rest } = runqueueParts(event);
  return [
    ...holders.map((h) => `${holderComm(h)} ${h.pid}/${String(h.tid ?? '?')} ${h.ms.toFixed(3)}ms`),
    ...rest.map((r) => `${r.part} ${r.ms.toFixed(3)}ms`),
  ].join(', ');
}

/** The few attributes that say what happened, per kind. */
function summary(event: KernelEvent): string {
  const a = event.attributes;
  const error =
    a[A.ATTR_CAUSEWAY_CUDA_ERROR] !== undefined && a[A.ATTR_CAUSEWAY_CUDA_ERROR] !== 0
      ? ` error=${String(a[A.ATTR_CAUSEWAY_CUDA_ERROR])}`
      : '';
  switch (event.kind) {
    case 'cuda.launch': {
      const captured = a[A.ATTR_CAUSEWAY_CUDA_CAPTURED] === true ? ' (captured into a graph)' : '';
      if (a[A.ATTR_CAUSEWAY_CUDA_GRAPH_EXEC] !== undefined) {
        const kernels = a[A.ATTR_CAUSEWAY_CUDA_GRAPH_KERNELS];
        const inside = Array.isArray(kernels) ? `[${kernels.join(', ')}]` : '(kernels captured before capture started)';
        return `graph ${String(a[A.ATTR_CAUSEWAY_CUDA_GRAPH_EXEC])} ${inside} stream=${String(a[A.ATTR_CAUSEWAY_CUDA_STREAM])}${captured}${error}`;
      }
      const kernel = a[A.ATTR_CAUSEWAY_CUDA_KERNEL] ?? `(unnamed kernel ${String(a[A.ATTR_CAUSEWAY_CUDA_FUNCTION])})`;
      return `${String(kernel)} grid=${dims(a[A.ATTR_CAUSEWAY_CUDA_GRID])} block=${dims(a[A.ATTR_CAUSEWAY_CUDA_BLOCK])} stream=${String(a[A.ATTR_CAUSEWAY_CUDA_STREAM])}${captured}${error}`;
    }
    case 'cuda.sync': {
      const on = a[A.ATTR_CAUSEWAY_CUDA_EVENT] ?? a[A.ATTR_CAUSEWAY_CUDA_STREAM];
      const inflight =
        a[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT] === undefined
          ? ''
          : ` inflight=${String(a[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT])} [${(a[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_KERNELS] as string[]).join(', ')}]`;
      const polls = a[A.ATTR_CAUSEWAY_CUDA_SYNC_POLLS];
      const polling = polls === undefined ? '' : ` polling (${String(polls)} queries)`;
      return `${String(a[A.ATTR_CAUSEWAY_CUDA_API])}${on === undefined ? '' : ` ${String(on)}`}${polling}${inflight}${error}`;
    }
    case 'cuda.memcpy':
      return `${String(a[A.ATTR_CAUSEWAY_CUDA_API])} ${bytes(a[A.ATTR_CAUSEWAY_CUDA_MEMCPY_BYTES])} ${String(a[A.ATTR_CAUSEWAY_CUDA_MEMCPY_DIRECTION])}${error}`;
    case 'cuda.malloc':
      return `${String(a[A.ATTR_CAUSEWAY_CUDA_MALLOC_OP])} ${bytes(a[A.ATTR_CAUSEWAY_CUDA_MALLOC_BYTES])} ${String(a[A.ATTR_CAUSEWAY_CUDA_MALLOC_PTR])}${error}`;
    case 'sched.runqueue':
      return `cpu${String(a[A.ATTR_CAUSEWAY_SCHED_CPU])} ${a[A.ATTR_CAUSEWAY_SCHED_PREEMPTED] === true ? 'preempted' : 'woken'}, cpu held by ${heldBy(event)}`;
    case 'sched.blocked':
      return `state ${String(a[A.ATTR_CAUSEWAY_SCHED_STATE])}, woken by ${who(a, A.ATTR_CAUSEWAY_SCHED_WAKER_PID, A.ATTR_CAUSEWAY_SCHED_WAKER_TID, A.ATTR_CAUSEWAY_SCHED_WAKER_COMM)}`;
    case 'futex.wait':
      return `${String(a[A.ATTR_CAUSEWAY_FUTEX_OP])} ${String(a[A.ATTR_CAUSEWAY_FUTEX_UADDR])}, woken by ${who(a, A.ATTR_CAUSEWAY_FUTEX_WAKER_PID, A.ATTR_CAUSEWAY_FUTEX_WAKER_TID, A.ATTR_CAUSEWAY_FUTEX_WAKER_COMM)} result=${String(a[A.ATTR_CAUSEWAY_FUTEX_RESULT])}`;
    case 'block.io':
      return `${String(a[A.ATTR_CAUSEWAY_BLOCK_DEVICE])} ${String(a[A.ATTR_CAUSEWAY_BLOCK_OP])} ${bytes(a[A.ATTR_CAUSEWAY_BLOCK_BYTES])} (${String(a[A.ATTR_CAUSEWAY_BLOCK_RWBS])}, as ${String(a[A.ATTR_CAUSEWAY_BLOCK_ATTRIBUTION])})`;
    case 'tcp.retransmit':
      return `${String(a[A.ATTR_NETWORK_LOCAL_ADDRESS])}:${String(a[A.ATTR_NETWORK_LOCAL_PORT])} -> ${String(a[A.ATTR_NETWORK_PEER_ADDRESS])}:${String(a[A.ATTR_NETWORK_PEER_PORT])} ${String(a[A.ATTR_CAUSEWAY_TCP_STATE])}`;
    case 'ipc.message':
      return `${String(a[A.ATTR_CAUSEWAY_IPC_DIRECTION])} ${bytes(a[A.ATTR_CAUSEWAY_IPC_BYTES])} on ${String(a[A.ATTR_CAUSEWAY_IPC_CONNECTION])}`;
    case 'cuda.launches': {
      const names = strings(a[A.ATTR_CAUSEWAY_CUDA_KERNELS]);
      const counts = a[A.ATTR_CAUSEWAY_CUDA_KERNEL_COUNTS] as number[];
      return `${String(a[A.ATTR_CAUSEWAY_SUMMARY_COUNT])} launches [${names.map((n, i) => `${n} x${String(counts[i])}`).join(', ')}] stream=${String(a[A.ATTR_CAUSEWAY_CUDA_STREAM])}`;
    }
    case 'sched.runqueues':
      return `${String(a[A.ATTR_CAUSEWAY_SUMMARY_COUNT])} run-queue waits, ${String(a[A.ATTR_CAUSEWAY_SCHED_WAIT_MS])}ms in all (longest ${String(a[A.ATTR_CAUSEWAY_SCHED_MAX_WAIT_MS])}ms)`;
    case 'sched.blocked_waits':
      return `${String(a[A.ATTR_CAUSEWAY_SUMMARY_COUNT])} blocked waits, ${String(a[A.ATTR_CAUSEWAY_SCHED_WAIT_MS])}ms in all (longest ${String(a[A.ATTR_CAUSEWAY_SCHED_MAX_WAIT_MS])}ms, woken by ${who(a, A.ATTR_CAUSEWAY_SCHED_WAKER_PID, A.ATTR_CAUSEWAY_SCHED_WAKER_TID, A.ATTR_CAUSEWAY_SCHED_WAKER_COMM)})`;
    case 'futex.waits':
      return `${String(a[A.ATTR_CAUSEWAY_SUMMARY_COUNT])} futex waits, ${String(a[A.ATTR_CAUSEWAY_FUTEX_WAIT_MS])}ms in all (longest ${String(a[A.ATTR_CAUSEWAY_FUTEX_MAX_WAIT_MS])}ms, woken by ${who(a, A.ATTR_CAUSEWAY_FUTEX_WAKER_PID, A.ATTR_CAUSEWAY_FUTEX_WAKER_TID, A.ATTR_CAUSEWAY_FUTEX_WAKER_COMM)})`;
  }
}

export const TABLE_HEADER = `${'TIME'.padEnd(12)} ${'KIND'.padEnd(14)} ${'COMM PID/TID'.padEnd(30)} ${'MS'.padStart(10)}  WHAT\n`;

export function toTableRow(event: KernelEvent): string {
  const time = new Date(Number(event.startUnixNano / 1_000_000n)).toTimeString().slice(0, 8);
  const millis = String(Number((event.startUnixNano / 1_000_000n) % 1000n)).padStart(3, '0');
  const task = `${event.comm} ${event.pid}/${event.tid}`;
  const duration = ms(event.endUnixNano - event.startUnixNano).toFixed(3);
  return `${`${time}.${millis}`.padEnd(12)} ${event.kind.padEnd(14)} ${task.padEnd(30)} ${duration.padStart(10)}  ${summary(event)}\n`;
}

export function closingSummary(counters: CaptureCounters): string {
  const line = (counts: Record<string, number>) =>
    Object.entries(counts)
      .filter(([, n]) => n > 0)
      .map(([kind, n]) => `${kind} ${n}`)
      .join(', ') || 'none';
  const lines = [`events: ${line(counters.events)}`];
  // Summaries stand for more events than they are: what was captured, counting the events summed.
  if (Object.keys(counters.covered).some((kind) => counters.covered[kind] !== counters.events[kind]))
    lines.push(`events covered: ${line(counters.covered)}`);
  lines.push(`drops: ${line(counters.drops)}`);
  if (counters.shedEpisodes > 0)
    lines.push(
      `shed while behind (${counters.shedEpisodes} times): in the kernel ${line(counters.shed)}; in the sidecar ${line(counters.shedDelivered)}`,
    );
  if (Object.values(counters.shedLate).some((n) => n > 0))
    lines.push(`shed too late (ended over ${MAX_LAG_MS} ms before they were read): ${line(counters.shedLate)}`);
  if (counters.threadContextProcesses > 0 || counters.threadContextUnresolved > 0)
    lines.push(
      `thread context: ${counters.threadContextProcesses} processes read exactly, ${counters.threadContextUnresolved} publishing one that cannot be read`,
    );
  if (counters.unnamedKernels > 0)
    lines.push(
      `unnamed kernels: ${counters.unnamedKernels} (registered, or their handle taken, before capture started; no symbol)`,
    );
  if (counters.badBatches > 0) lines.push(`undecodable batches: ${counters.badBatches}`);
  return lines.map((l) => `causeway: ${l}\n`).join('');
}

function describe(message: LoaderMessage): string {
  if (message.fields.event === 'library') {
    // pid 0: a library named with --lib rather than found in a process.
    const pid = message.fields.pid;
    const where = typeof pid === 'number' && pid !== 0 ? ` (pid ${pid})` : '';
    return `probing ${String(message.fields.path)}${where}: ${String(message.fields.probes)} probes`;
  }
  return message.msg;
}

interface CaptureRun {
  json: boolean;
  durationS?: number;
  /** The loader's options, for a live capture. */
  live: Pick<CaptureOptions, 'pids' | 'comms' | 'libs' | 'minDurationUs' | 'ringbufMb' | 'reduction'>;
  record?: string;
  replay?: string;
}

function parseCapture(argv: string[]): CaptureRun | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean' },
      pid: { type: 'string', multiple: true },
      comm: { type: 'string', multiple: true },
      lib: { type: 'string', multiple: true },
      duration: { type: 'string' },
      'min-duration-us': { type: 'string' },
      'ringbuf-mb': { type: 'string' },
      'reduce-window-ms': { type: 'string' },
      'launch-whole-us': { type: 'string' },
      'runqueue-whole-us': { type: 'string' },
      'wait-whole-us': { type: 'string' },
      record: { type: 'string' },
      replay: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) return undefined;
  if (values.replay !== undefined) {
    const live = [
      'pid',
      'comm',
      'lib',
      'duration',
      'min-duration-us',
      'ringbuf-mb',
      'reduce-window-ms',
      'launch-whole-us',
      'runqueue-whole-us',
      'wait-whole-us',
      'record',
    ] as const;
    const given = live.filter((name) => values[name] !== undefined);
    if (given.length > 0) throw new UsageError(`--replay decodes a file: --${given.join(', --')} cannot go with it`);
    if (!existsSync(values.replay)) throw new UsageError(`--replay ${values.replay}: no such file`);
  }
  const libs = values.lib ?? [];
  for (const lib of libs) if (!existsSync(lib)) throw new UsageError(`--lib ${lib}: no such file`);
  const ringbufMb =
    values['ringbuf-mb'] === undefined ? undefined : positiveInteger('--ringbuf-mb', values['ringbuf-mb']);
  if (ringbufMb !== undefined && (ringbufMb & (ringbufMb - 1)) !== 0)
    throw new UsageError('--ringbuf-mb must be a power of two');
  const minDurationUs =
    values['min-duration-us'] === undefined
      ? undefined
      : nonNegativeInteger('--min-duration-us', values['min-duration-us']);
  const reduction = {
    windowMs: nonNegativeInteger('--reduce-window-ms', values['reduce-window-ms'] ?? String(REDUCTION.windowMs)),
    launchWholeUs: positiveInteger('--launch-whole-us', values['launch-whole-us'] ?? String(REDUCTION.launchWholeUs)),
    runqueueWholeUs: positiveInteger(
      '--runqueue-whole-us',
      values['runqueue-whole-us'] ?? String(REDUCTION.runqueueWholeUs),
    ),
    waitWholeUs: positiveInteger('--wait-whole-us', values['wait-whole-us'] ?? String(REDUCTION.waitWholeUs)),
  };
  return {
    json: values.json === true,
    ...(values.duration === undefined ? {} : { durationS: positiveNumber('--duration', values.duration) }),
    live: {
      pids: (values.pid ?? []).map((pid) => positiveInteger('--pid', pid)),
      comms: values.comm ?? [],
      libs,
      ...(minDurationUs === undefined ? {} : { minDurationUs }),
      ...(ringbufMb === undefined ? {} : { ringbufMb }),
      reduction,
    },
    ...(values.record === undefined ? {} : { record: values.record }),
    ...(values.replay === undefined ? {} : { replay: values.replay }),
  };
}

/** A live capture (recorded or not), or a replay of a file, over the context it shapes events with. */
function session(
  run: CaptureRun,
  log: (message: LoaderMessage) => void,
  onEvents: CaptureOptions['onEvents'],
): KernelCapture {
  const options = { ...run.live, onMessage: log, onEvents };
  if (run.replay !== undefined) {
    const replay = new Replay(run.replay);
    return new KernelCapture(options, captureParts(replay.host.processes, log, replay.host), replay);
  }
  const live = { processes: new ProcessTable(), devices: new BlockDevices() };
  if (run.record === undefined) return new KernelCapture(options, captureParts(live.processes, log, live));
  const recording = new Recording(run.record);
  const host = recording.lookups(live);
  return new KernelCapture({ ...options, recording }, captureParts(host.processes, log, host));
}

function readyLine(run: CaptureRun, hello: Hello, seconds: string): string {
  if (run.replay !== undefined) return `causeway: replaying ${run.replay}, captured on ${hello.ncpus} CPUs\n`;
  const until = run.durationS === undefined ? 'Ctrl-C to stop' : `stopping after ${run.durationS} s`;
  const recording = run.record === undefined ? '' : `, recording to ${run.record}`;
  return `causeway: capturing on ${hello.ncpus} CPUs, ring buffer ${bytes(hello.ringbufBytes)}, ready in ${seconds} s${recording}; ${until}\n`;
}

export async function capture(argv: string[]): Promise<number> {
  const run = parseCapture(argv);
  if (run === undefined) {
    process.stdout.write(CAPTURE_HELP);
    return 0;
  }
  const out = process.stdout;
  let outClosed = false;
  out.on('error', (error: NodeJS.ErrnoException) => {
    // The reader went away (`| head`): stop capturing, quietly.
    if (error.code !== 'EPIPE') throw error;
    outClosed = true;
    void capturing.stop();
  });
  const log = (message: LoaderMessage) => {
    process.stderr.write(`causeway: ${message.level === 'info' ? '' : `${message.level}: `}${describe(message)}\n`);
  };
  const startedAt = performance.now();
  const capturing = session(run, log, async (batch) => {
    if (outClosed) return;
    const text = batch
      .events()
      .map(run.json ? (e) => `${toJson(e)}\n` : toTableRow)
      .join('');
    if (!out.write(text)) await writable(out);
  });

  const stop = () => void capturing.stop();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  capturing.start();
  if (run.durationS !== undefined) setTimeout(stop, run.durationS * 1000).unref();
  void capturing.ready.then((hello) => {
    process.stderr.write(readyLine(run, hello, ((performance.now() - startedAt) / 1000).toFixed(2)));
    if (!run.json) out.write(TABLE_HEADER);
  });

  const end = await capturing.ended;
  await capturing.stop();
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  process.stderr.write(closingSummary(capturing.counters()));
  // The reason, if any, was logged as it happened.
  return end.failure === null ? 0 : 1;
}
