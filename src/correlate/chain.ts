// From a piece of lost time to its root cause: a wait is followed to its waker and to what the
// waker was doing meanwhile (on the GPU, on I/O, on another lock...), to a bounded depth; a GPU
// wait to the kernels in flight and the other processes using the GPU. The end of that chain
// is the root.
import { otherTask, strings, type KernelEvent } from '../kernel/events.js';
import { holders } from '../kernel/holders.js';
import * as A from '../semconv/attributes.js';
import { classify, namedTask, wokenByNoTask, type Interval } from './classify.js';
import { asRemote, isLinked, type LinkKind } from './linked.js';
import type { ChainLink, Culprit } from './explanation.js';
import type { TraceSource } from './source.js';
import { quoted, rounded } from './summary.js';
import { earlier, later, toMs } from './time.js';

/** Wakers followed at most, from the request thread to the root. */
export const MAX_CHAIN_DEPTH = 4;
/** A waker's activity is a link only if it covers this share of the wait. */
const LINK_MIN_SHARE = 0.3;
/** How far before a GPU wait the launch of the kernel it waited for is looked for. */
const LAUNCH_LOOKBACK_NS = 2_000_000_000n;

/** Where an interval leads: the kind and culprit at the end of its chain, the links, and the evidence. */
export interface Resolution {
  kind: Interval['kind'];
  culprit: Culprit | null;
  chain: ChainLink[];
  evidence: string[];
  /**
   * When the time has several culprits (the tasks that held the CPU during a run-queue wait):
   * the share of it each one accounts for (its on-CPU time within the wait), most first;
   * `culprit` is the first. The shares may add up to less than 1: the rest is no one's.
   */
  shares?: { culprit: Culprit; share: number }[];
}

const text = (v: unknown) => (typeof v === 'string' ? v : undefined);

const link = (interval: Interval, time: bigint): ChainLink => ({
  kind: interval.kind,
  pid: interval.event.pid,
  tid: interval.event.tid,
  comm: interval.event.comm,
  time_ms: rounded(toMs(time)),
});

/** A chain of one link that ends where it starts. */
const direct = (interval: Interval, own: ChainLink, culprit: Culprit | null, evidence: string): Resolution => ({
  kind: interval.kind,
  culprit,
  chain: [own],
  evidence: [evidence],
});

function mostCommon(values: string[]): string | undefined {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
}

/** The kernels a GPU wait found in flight on its stream. */
const inflightKernels = (event: KernelEvent) => strings(event.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_KERNELS]);

/** The device a CUDA event went to; undefined when not known (chosen before Causeway started). */
function deviceOf(event: KernelEvent): number | undefined {
  const device = event.attributes[A.ATTR_CAUSEWAY_CUDA_DEVICE];
  return typeof device === 'number' ? device : undefined;
}

/** Whether two CUDA events may share a device: only known, different devices cannot. */
function mayShareDevice(a: KernelEvent, b: KernelEvent): boolean {
  const x = deviceOf(a);
  const y = deviceOf(b);
  return x === undefined || y === undefined || x === y;
}

const gpuCulprit = (task: { pid: number; tid: number; comm: string }, kernel: string | undefined): Culprit => ({
  pid: task.pid,
  tid: task.tid,
  comm: task.comm,
  ...(kernel === undefined ? {} : { cuda_kernel: kernel }),
});

const overlapping = (events: KernelEvent[], from: bigint, to: bigint) =>
  events.filter((e) => e.startUnixNano < to && e.endUnixNano > from);

/**
 * A run-queue wait: its culprits are the tasks that held the CPU meanwhile, each for the share
 * of the wait it was on the CPU. What the CPU's run history did not see, or Causeway held
 * (counted apart, in classify), is no one's.
 */
function runqueue(interval: Interval, own: ChainLink): Resolution {
  const { event } = interval;
  const held = holders(event).map(({ pid, tid, comm, ms }) => ({ culprit: { pid, tid, comm }, ms }));
  const cpu = String(event.attributes[A.ATTR_CAUSEWAY_SCHED_CPU]);
  const waitMs = toMs(event.endUnixNano - event.startUnixNano);
  // The piece of the wait these shares divide excludes Causeway's share (classify counts it apart).
  const tracerMs = event.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_CAUSEWAY_MS];
  const othersMs = waitMs - (typeof tracerMs === 'number' ? tracerMs : 0);
  const seen = event.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_SEEN_MS];
  const by =
    held.length === 0
      ? 'an unknown task'
      : held
          .map((h) => `pid ${String(h.culprit.pid)} ${quoted(h.culprit.comm ?? '')} for ${String(rounded(h.ms))} ms`)
          .join(', ');
  const unseen =
    typeof seen === 'number' && seen < 0.9 * waitMs
      ? ` (the CPU's run history saw the last ${String(rounded(seen))} ms of the wait)`
      : '';
  return {
    ...direct(
      interval,
      own,
      held[0]?.culprit ?? null,
      `waited ${own.time_ms} ms for CPU ${cpu} held by ${by}${unseen}`,
    ),
    ...(held.length === 0 || othersMs <= 0
      ? {}
      : { shares: held.map((h) => ({ culprit: h.culprit, share: Math.min(1, h.ms / othersMs) })) }),
  };
}

function blockIo(interval: Interval, own: ChainLink): Resolution {
  const io = interval.cause ?? interval.event;
  const device = text(io.attributes[A.ATTR_CAUSEWAY_BLOCK_DEVICE]) ?? 'unknown';
  const op = text(io.attributes[A.ATTR_CAUSEWAY_BLOCK_OP]) ?? 'unknown';
  // The kernel's flags tell a metadata read (RM) the filesystem needed from the app's own read.
  const rwbs = text(io.attributes[A.ATTR_CAUSEWAY_BLOCK_RWBS]);
  const request = rwbs === undefined ? op : `${op} (${rwbs})`;
  const culprit = { pid: io.pid, tid: io.tid, comm: io.comm, device, op };
  if (interval.cause === undefined) {
    const bytes = String(io.attributes[A.ATTR_CAUSEWAY_BLOCK_BYTES]);
    return direct(
      interval,
      own,
      culprit,
      `${request} on ${device}: ${bytes} bytes, ${rounded(toMs(io.endUnixNano - io.startUnixNano))} ms`,
    );
  }
  // A sleep the kernel ended: on the thread's own request, or on I/O someone else submitted.
  const ender = otherTask(interval.event)?.comm ?? 'an interrupt';
  const waitedFor =
    device === 'unknown'
      ? ': waiting for I/O it did not submit itself'
      : `, after its own ${request} on ${device}: waiting for the device`;
  return direct(
    interval,
    own,
    culprit,
    `uninterruptible sleep of ${own.time_ms} ms ended by the kernel (${ender})${waitedFor}`,
  );
}

function retransmit(interval: Interval, own: ChainLink): Resolution {
  const r = interval.cause ?? interval.event;
  const peer = `${text(r.attributes[A.ATTR_NETWORK_PEER_ADDRESS]) ?? '?'}:${String(r.attributes[A.ATTR_NETWORK_PEER_PORT])}`;
  const state = String(r.attributes[A.ATTR_CAUSEWAY_TCP_STATE]);
  return direct(
    interval,
    own,
    { pid: null, tid: null, comm: null, peer },
    `blocked ${own.time_ms} ms until a TCP retransmit to ${peer} (state ${state}) got through`,
  );
}

/** Follows intervals to their roots, over one trace's window: the events it reads are cached for the trace. */
export class Analysis {
  /** Events per thread over the whole trace, read once: many waits share a waker. */
  private readonly threads = new Map<string, Promise<KernelEvent[]>>();
  private readonly othersOnGpu = new Map<number, Promise<KernelEvent[]>>();

  constructor(
    private readonly source: TraceSource,
    private readonly window: { from: bigint; to: bigint },
  ) {}

  private threadEvents(pid: number, tid: number, from: bigint, to: bigint): Promise<KernelEvent[]> {
    const key = `${String(pid)}/${String(tid)}`;
    let events = this.threads.get(key);
    if (events === undefined)
      this.threads.set(key, (events = this.source.events({ pid, tid, from: this.window.from, to: this.window.to })));
    return events.then((all) => overlapping(all, from, to));
  }

  /** The GPU events of every process but `pid`, read once per trace. */
  private otherGpuEvents(pid: number, from: bigint, to: bigint): Promise<KernelEvent[]> {
    let events = this.othersOnGpu.get(pid);
    if (events === undefined)
      this.othersOnGpu.set(pid, (events = this.source.gpuEvents(this.window.from, this.window.to, pid)));
    return events.then((all) => overlapping(all, from, to));
  }

  /** Follows an interval to the end of its causal chain; at MAX_CHAIN_DEPTH, names its direct culprit without reading more. */
  async resolve(interval: Interval, time: bigint, depth: number): Promise<Resolution> {
    const own = link(interval, time);
    if (isLinked(interval.event)) return this.linked(interval, time, own, depth);
    switch (interval.kind) {
      case 'futex.wait':
      case 'sched.blocked':
        return this.wait(interval, own, depth);
      case 'cuda.sync':
      case 'cuda.memcpy':
      case 'cuda.malloc':
        return this.gpu(interval, own, depth);
      case 'cuda.launch':
        return this.blockedLaunch(interval, own);
      case 'causeway':
        return direct(
          interval,
          own,
          null,
          `waited ${own.time_ms} ms for a CPU held by Causeway itself (its sidecar or loader)`,
        );
      case 'sched.runqueue':
        return runqueue(interval, own);
      case 'block.io':
        return blockIo(interval, own);
      case 'tcp.retransmit':
        return retransmit(interval, own);
    }
  }

  /**
   * A wait of another process linked to the request (linked.ts): the request's thread waited
   * on it, and it is followed in that process as if it were one of its own.
   */
  private async linked(interval: Interval, time: bigint, own: ChainLink, depth: number): Promise<Resolution> {
    const { event } = interval;
    const remote = asRemote(event);
    const cause = interval.cause === undefined ? {} : { cause: asRemote(interval.cause) as typeof interval.cause };
    const next = await this.resolve({ ...interval, event: remote as Interval['event'], ...cause }, time, depth + 1);
    const kind = event.attributes[A.ATTR_CAUSEWAY_LINK] as LinkKind;
    const shared = Number(event.attributes[A.ATTR_CAUSEWAY_SHARED_COUNT] ?? 1);
    const [first, ...rest] = next.chain;
    const how = kind === 'connection' ? 'the connection it sent the request on' : 'its wakeup';
    return {
      ...next,
      chain: [
        own,
        ...(first === undefined ? [] : [{ ...first, link: kind, ...(shared > 1 ? { shared_by: shared } : {}) }]),
        ...rest,
      ],
      evidence: [
        `tid ${String(event.tid)} waited ${own.time_ms} ms on pid ${String(remote.pid)} ${quoted(remote.comm)} tid ${String(remote.tid)}, linked by ${how}${
          shared > 1 ? `; that wait served ${String(shared)} requests` : ''
        }`,
        ...next.evidence,
      ],
    };
  }

  /** A wait leads to its waker, and to what the waker was doing while we waited. */
  private async wait(interval: Interval, own: ChainLink, depth: number): Promise<Resolution> {
    const { event } = interval;
    const waker = namedTask(event);
    if (waker?.tid == null || wokenByNoTask(event)) {
      // No task woke it (a timeout, a timer, an interrupt on an idle CPU): not a cause we can name.
      return direct(interval, own, null, `${interval.kind} of ${own.time_ms} ms ended without a waking task`);
    }
    const evidence = [
      `${interval.kind} of ${own.time_ms} ms in tid ${String(event.tid)}, woken by pid ${String(waker.pid)} tid ${String(waker.tid)} ${quoted(waker.comm ?? '')}`,
    ];
    if (depth < MAX_CHAIN_DEPTH) {
      const from = event.startUnixNano;
      const to = event.endUnixNano;
      // What the waker did meanwhile, by kind; the link is that kind's longest interval.
      const activity = classify(await this.threadEvents(waker.pid, waker.tid, from, to), from, to);
      const perKind = new Map<Interval['kind'], { total: bigint; longest: Interval; longestNs: bigint }>();
      for (const [i, ns] of activity.time) {
        const k = perKind.get(i.kind);
        if (k === undefined) perKind.set(i.kind, { total: ns, longest: i, longestNs: ns });
        else {
          k.total += ns;
          if (ns > k.longestNs) Object.assign(k, { longest: i, longestNs: ns });
        }
      }
      const busiest = [...perKind.values()].sort((a, b) => Number(b.total - a.total))[0];
      if (busiest !== undefined && Number(busiest.total) >= LINK_MIN_SHARE * Number(to - from)) {
        const next = await this.resolve(busiest.longest, busiest.total, depth + 1);
        // A waker in another process links the request to that process's wait.
        const [first, ...rest] = next.chain;
        const chain =
          first !== undefined && waker.pid !== event.pid
            ? [own, { ...first, link: 'waker' as const }, ...rest]
            : [own, ...next.chain];
        // A link that names nobody (a sleep no task ended) ends the chain here: the waker is the culprit.
        if (next.culprit !== null) return { ...next, chain, evidence: [...evidence, ...next.evidence] };
        evidence.push(...next.evidence);
      } else {
        evidence.push(`the waker was on CPU (or not traced) for ${rounded(toMs(activity.uncovered))} ms of that wait`);
      }
    }
    return { kind: interval.kind, culprit: waker, chain: [own], evidence };
  }

  /** A GPU wait: the kernels in flight on the stream, and other processes' GPU work overlapping it. */
  private async gpu(interval: Interval, own: ChainLink, depth: number): Promise<Resolution> {
    const { event } = interval;
    const a = event.attributes;
    const api = text(a[A.ATTR_CAUSEWAY_CUDA_API]) ?? interval.kind;
    const inflight = inflightKernels(event);
    const polls = a[A.ATTR_CAUSEWAY_CUDA_SYNC_POLLS];
    const graphs = strings(a[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_GRAPHS]);
    const evidence = [
      `${api} ${typeof polls === 'number' ? `polled ${String(polls)} times over` : 'waited'} ${own.time_ms} ms${
        inflight.length > 0
          ? ` with ${String(a[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT] ?? inflight.length)} kernels in flight: ${[
              ...new Set(inflight),
            ]
              .slice(0, 5)
              .map((k) => quoted(k))
              .join(', ')}`
          : ''
      }${graphs.length > 0 ? `, graphs in flight: ${graphs.join(', ')}` : ''}${
        deviceOf(event) === undefined ? '' : ` on GPU ${String(deviceOf(event))}`
      }`,
    ];

    if (depth >= MAX_CHAIN_DEPTH)
      return { kind: interval.kind, culprit: gpuCulprit(event, mostCommon(inflight)), chain: [own], evidence };
    const others = await this.otherGpuUsers(event);
    const waitNs = event.endUnixNano - event.startUnixNano;
    const [topPid, top] =
      [...others.entries()].sort((x, y) => Number(y[1].overlap - x[1].overlap) || y[1].launches - x[1].launches)[0] ??
      [];
    for (const [pid, o] of [...others.entries()].slice(0, 3))
      evidence.push(
        `pid ${String(pid)} ${quoted(o.comm)} used the GPU meanwhile: ${String(o.launches)} launches, ${rounded(toMs(o.overlap))} ms of its own GPU waits overlapping`,
      );
    if (
      topPid !== undefined &&
      top !== undefined &&
      (inflight.length === 0 || Number(top.overlap) >= 0.5 * Number(waitNs))
    ) {
      return {
        kind: interval.kind,
        culprit: gpuCulprit({ pid: topPid, tid: top.tid, comm: top.comm }, mostCommon(top.kernels)),
        chain: [own],
        evidence,
      };
    }
    const kernel = mostCommon(inflight);
    return {
      kind: interval.kind,
      culprit: gpuCulprit(await this.launcher(event, kernel), kernel),
      chain: [own],
      evidence,
    };
  }

  /**
   * A launch that blocked because the launch queue was full: it waited for the kernels queued
   * ahead of it, so the culprit is the most common of them, and the thread that launched it.
   */
  private async blockedLaunch(interval: Interval, own: ChainLink): Promise<Resolution> {
    const { event } = interval;
    const a = event.attributes;
    const queued = inflightKernels(event);
    const kernel = mostCommon(queued) ?? text(a[A.ATTR_CAUSEWAY_CUDA_KERNEL]);
    const ahead = `${String(a[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT] ?? queued.length)} kernels queued ahead on stream ${
      text(a[A.ATTR_CAUSEWAY_CUDA_STREAM]) ?? '?'
    }`;
    return direct(
      interval,
      own,
      gpuCulprit(await this.launcher(event, kernel), kernel),
      `${text(a[A.ATTR_CAUSEWAY_CUDA_API]) ?? 'launch'} blocked ${own.time_ms} ms with the launch queue full: ${ahead}${
        queued.length > 0 ? `: ${queued.map((k) => quoted(k)).join(', ')}` : ''
      }`,
    );
  }

  /**
   * Other users of the wait's GPU, per process: how much of the wait their own GPU waits and
   * copies overlapped, and what they launched. Work known to be on another device is not theirs
   * to share; work on a device not known may be.
   */
  private async otherGpuUsers(wait: KernelEvent) {
    const others = new Map<
      number,
      { overlap: bigint; launches: number; kernels: string[]; tid: number; comm: string }
    >();
    for (const e of await this.otherGpuEvents(wait.pid, wait.startUnixNano, wait.endUnixNano)) {
      // A linked wait is a copy of another process's own, which is here too.
      if (isLinked(e) || !mayShareDevice(wait, e)) continue;
      const o = others.get(e.pid) ?? { overlap: 0n, launches: 0, kernels: [], tid: e.tid, comm: e.comm };
      if (e.kind === 'cuda.launch') {
        o.launches++;
        const kernel = text(e.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL]);
        if (kernel !== undefined) o.kernels.push(kernel);
        o.kernels.push(...strings(e.attributes[A.ATTR_CAUSEWAY_CUDA_GRAPH_KERNELS]));
      } else {
        o.overlap += earlier(e.endUnixNano, wait.endUnixNano) - later(e.startUnixNano, wait.startUnixNano);
        o.kernels.push(...inflightKernels(e));
      }
      others.set(e.pid, o);
    }
    return others;
  }

  /** The thread that launched the kernel a wait waited for: the last launch of it in the process before the wait. */
  private async launcher(wait: KernelEvent, kernel: string | undefined): Promise<KernelEvent> {
    if (kernel === undefined) return wait;
    const before = await this.source.events({
      pid: wait.pid,
      from: wait.startUnixNano - LAUNCH_LOOKBACK_NS,
      to: wait.startUnixNano,
    });
    return (
      before.filter((e) => e.kind === 'cuda.launch' && e.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL] === kernel).at(-1) ??
      wait
    );
  }
}
