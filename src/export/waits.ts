// Kernel waits as metrics, recorded when kernel events are attached to app spans, so that
// dashboards show them per service without extra collector components: how long each wait
// lasted per kind (a histogram), and what was behind it (the CUDA API and kernel, the tasks that
// held the CPU, the other processes launching on the GPU meanwhile).
//
// Label values come from the traced apps (service names, process names, CUDA kernel names), so
// each label keeps at most a bounded number of distinct values: the first ones seen keep their
// name, later ones are reported as "other" and counted. The series of every instrument are
// therefore bounded; see README, "Metrics and dashboards". A run-queue wait is split among the
// tasks that held the CPU, each for its on-CPU time within the wait; the time no listed task
// held goes to a few fixed values (kernel/holders.ts), so the holder series add up to the waits.
import type { Counter, Histogram, Meter } from '@opentelemetry/api';
import type { Attachment } from '../correlate/correlator.js';
import { isLinked } from '../correlate/linked.js';
import { SUMMARIZED, strings, type EventBatch, type KernelEvent } from '../kernel/events.js';
import { holderComm, runqueueParts } from '../kernel/holders.js';
import type { AppSpan } from '../otlp/index.js';
import * as A from '../semconv/attributes.js';
import { isPoint } from './spans.js';

/** Bucket bounds in seconds: 1-2.5-5 steps from 10 µs (a short run-queue wait) to 10 s (a GPU sync on a long kernel). */
export const WAIT_BUCKETS_S = [
  0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
  5, 10,
];
/** What a label value is reported as once its label has reached its bound. */
export const OTHER = 'other';
/** Distinct values per label at most, and characters per value (long C++ kernel names are cut). */
const MAX_VALUES = 64;
const MAX_VALUE_LENGTH = 128;
/** Launches kept for co-tenant lookups: the correlator's window at most, and a bound on their number. */
const MAX_LAUNCHES = 200_000;

const seconds = (ns: bigint) => Number(ns) / 1e9;
const text = (v: unknown) => (typeof v === 'string' ? v : undefined);

/** One label's values, at most MAX_VALUES distinct ones; later new values become OTHER, counted. */
class BoundedLabel {
  private readonly values = new Set<string>();

  constructor(
    private readonly label: string,
    private readonly overflow: Counter,
  ) {}

  value(raw: string): string {
    const value = raw.slice(0, MAX_VALUE_LENGTH);
    if (this.values.has(value)) return value;
    if (this.values.size < MAX_VALUES) {
      this.values.add(value);
      return value;
    }
    this.overflow.add(1, { label: this.label });
    return OTHER;
  }
}

/** Recent kernel launches per process, by start time, for "who else launched while this process waited". */
class RecentLaunches {
  private readonly byPid = new Map<number, { comm: string; startsUs: number[] }>();
  private held = 0;
  private forgotAtUs = 0;

  constructor(private readonly windowUs: number) {}

  /** A launch by `pid` (named `comm`) that began at `start` (Unix µs). */
  add(pid: number, comm: string, start: number): void {
    let p = this.byPid.get(pid);
    if (p === undefined) this.byPid.set(pid, (p = { comm, startsUs: [] }));
    p.comm = comm;
    // Records arrive nearly in start order: an out-of-order one moves back a few places.
    let i = p.startsUs.length;
    while (i > 0 && (p.startsUs[i - 1] ?? 0) > start) i--;
    p.startsUs.splice(i, 0, start);
    this.held++;
    // Forgetting shifts the lists: once a second, or when over the bound.
    if (start - this.forgotAtUs >= 1_000_000 || this.held > MAX_LAUNCHES) this.forget(start);
  }

  /** Launches per process name, other than `pid`'s, that began in [from, to). */
  during(pid: number, from: bigint, to: bigint): Map<string, number> {
    const [fromUs, toUs] = [Number(from / 1000n), Number(to / 1000n)];
    const counts = new Map<string, number>();
    for (const [other, { comm, startsUs }] of this.byPid) {
      const n = firstAtOrAfter(startsUs, toUs) - firstAtOrAfter(startsUs, fromUs);
      if (other !== pid && n > 0) counts.set(comm, (counts.get(comm) ?? 0) + n);
    }
    return counts;
  }

  /** Drops launches older than the window; over the bound, the busiest processes' oldest, down to 90% of it. */
  private forget(nowUs: number): void {
    this.forgotAtUs = nowUs;
    for (const [pid, p] of this.byPid) {
      const old = firstAtOrAfter(p.startsUs, nowUs - this.windowUs);
      p.startsUs.splice(0, old);
      this.held -= old;
      if (p.startsUs.length === 0) this.byPid.delete(pid);
    }
    if (this.held <= MAX_LAUNCHES) return;
    while (this.held > 0.9 * MAX_LAUNCHES) {
      const busiest = [...this.byPid.values()].reduce((a, b) => (b.startsUs.length > a.startsUs.length ? b : a));
      const n = Math.min(busiest.startsUs.length, Math.ceil(this.held - 0.9 * MAX_LAUNCHES));
      busiest.startsUs.splice(0, n);
      this.held -= n;
    }
  }
}

/** Index of the first value >= `at` in a sorted list. */
function firstAtOrAfter(sorted: number[], at: number): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((sorted[middle] ?? at) < at) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** The kernel a GPU wait waited for: the one most often in flight on its stream when it began. */
function awaitedKernel(event: KernelEvent): string | undefined {
  const inflight = event.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_KERNELS];
  const counts = new Map<string, number>();
  for (const k of Array.isArray(inflight) ? inflight : [])
    if (typeof k === 'string') counts.set(k, (counts.get(k) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
}

export class KernelWaits {
  private readonly wait: Histogram;
  private readonly cudaCalls: Counter;
  private readonly cudaCallTime: Counter;
  private readonly kernelLaunches: Counter;
  private readonly kernelWaitTime: Counter;
  private readonly runqueueTime: Counter;
  private readonly cotenantLaunches: Counter;
  private readonly service: BoundedLabel;
  private readonly kernel: BoundedLabel;
  private readonly holder: BoundedLabel;
  private readonly cotenant: BoundedLabel;
  private readonly launches: RecentLaunches;

  /** `windowMs`: how long launches are kept for co-tenant lookups (the correlator's retention). */
  constructor(meter: Meter, windowMs: number) {
    this.wait = meter.createHistogram('causeway_kernel_wait_seconds', {
      description: 'Kernel waits attached to app spans, per kind and service (point events excluded).',
      unit: 's',
      advice: { explicitBucketBoundaries: WAIT_BUCKETS_S },
    });
    const counter = (name: string, description: string, unit?: string) =>
      meter.createCounter(name, { description, ...(unit === undefined ? {} : { unit }) });
    this.cudaCalls = counter('causeway_cuda_calls', 'CUDA API calls attached to app spans, per service and API.');
    this.cudaCallTime = counter(
      'causeway_cuda_call_seconds',
      'Time in CUDA API calls attached to app spans, per service and API.',
      's',
    );
    this.kernelLaunches = counter(
      'causeway_cuda_kernel_launches',
      'Kernel launches attached to app spans, per service and kernel.',
    );
    this.kernelWaitTime = counter(
      'causeway_cuda_kernel_wait_seconds',
      'GPU synchronisation waits attached to app spans, per service and the kernel most in flight on the stream waited for.',
      's',
    );
    this.runqueueTime = counter(
      'causeway_runqueue_wait_seconds',
      'Run-queue waits attached to app spans, per service and holder: the process name of each task that held the CPU, for its on-CPU time within the wait; causeway, unlisted and unseen for the rest.',
      's',
    );
    this.cotenantLaunches = counter(
      'causeway_gpu_cotenant_launches',
      "Kernel launches by other processes while a service's span waited on the GPU, per service and process name.",
    );
    const overflow = counter(
      'causeway_metric_label_overflow',
      'Recordings whose label value was reported as "other": the label had reached its bound of distinct values.',
    );
    this.service = new BoundedLabel('service', overflow);
    this.kernel = new BoundedLabel('kernel', overflow);
    this.holder = new BoundedLabel('holder', overflow);
    this.cotenant = new BoundedLabel('cotenant', overflow);
    this.launches = new RecentLaunches(windowMs * 1000);
  }

  /** Every captured event, before joining: launches are kept for co-tenant lookups. */
  captured(batch: EventBatch): void {
    // Read from the batch's columns, no event made: a launch storm is most of a GPU node's events.
    const baseUs = Number(batch.base / 1000n);
    const baseNs = Number(batch.base % 1000n);
    for (let i = 0; i < batch.length; i++)
      if (batch.kind(i) === A.CAUSEWAY_KIND_VALUE_CUDA_LAUNCH)
        this.launches.add(batch.pid(i), batch.comm(i), baseUs + Math.floor((baseNs + batch.start(i)) / 1000));
  }

  attached(attachments: Attachment<AppSpan>[]): void {
    for (const { span, events, takenOver } of attachments) {
      const service = this.service.value(span.serviceName ?? 'unknown_service');
      for (const event of events) {
        // Recorded when first taken, not again when an inner span takes it over; a linked wait is
        // another process's, copied into every request it served: not this service's own.
        if (takenOver?.has(event) === true || isLinked(event)) continue;
        this.record(service, event);
      }
    }
  }

  private record(service: string, event: KernelEvent): void {
    if (SUMMARIZED[event.kind] !== undefined) {
      this.summary(service, event);
      return;
    }
    const duration = seconds(event.endUnixNano - event.startUnixNano);
    if (!isPoint(event)) this.wait.record(duration, { kind: event.kind, service });
    const api = text(event.attributes[A.ATTR_CAUSEWAY_CUDA_API]);
    if (api !== undefined) {
      this.cudaCalls.add(1, { service, api });
      this.cudaCallTime.add(duration, { service, api });
    }
    switch (event.kind) {
      case 'cuda.launch':
        this.kernelLaunches.add(1, {
          service,
          kernel: this.kernel.value(text(event.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL]) ?? 'unknown'),
        });
        break;
      case 'cuda.sync': {
        this.kernelWaitTime.add(duration, { service, kernel: this.kernel.value(awaitedKernel(event) ?? 'unknown') });
        for (const [comm, n] of this.launches.during(event.pid, event.startUnixNano, event.endUnixNano))
          this.cotenantLaunches.add(n, { service, cotenant: this.cotenant.value(comm) });
        break;
      }
      case 'sched.runqueue': {
        const { holders, rest } = runqueueParts(event);
        for (const h of holders)
          this.runqueueTime.add(h.ms / 1e3, { service, holder: this.holder.value(holderComm(h)) });
        // Fixed values, outside the bound: they must never be reported as "other".
        for (const { part, ms } of rest) this.runqueueTime.add(ms / 1e3, { service, holder: part });
        break;
      }
      default:
        break;
    }
  }

  /**
   * A summary (in-kernel reduction) counts as the events it sums: its launches per kernel and
   * the time in their calls, or its run-queue waits' total, whose holders were not recorded
   * (`summed`). Summed blocked and futex waits have no per-wait durations for the wait histogram,
   * which counts the waits kept whole.
   */
  private summary(service: string, event: KernelEvent): void {
    const a = event.attributes;
    if (event.kind === 'sched.runqueues') {
      this.runqueueTime.add(Number(a[A.ATTR_CAUSEWAY_SCHED_WAIT_MS]) / 1e3, { service, holder: 'summed' });
      return;
    }
    if (event.kind !== 'cuda.launches') return;
    const api = String(a[A.ATTR_CAUSEWAY_CUDA_API]);
    this.cudaCalls.add(Number(a[A.ATTR_CAUSEWAY_SUMMARY_COUNT]), { service, api });
    this.cudaCallTime.add(Number(a[A.ATTR_CAUSEWAY_CUDA_LAUNCH_CALL_MS]) / 1e3, { service, api });
    const counts = a[A.ATTR_CAUSEWAY_CUDA_KERNEL_COUNTS];
    strings(a[A.ATTR_CAUSEWAY_CUDA_KERNELS]).forEach((kernel, i) => {
      this.kernelLaunches.add(Array.isArray(counts) ? Number(counts[i]) : 0, {
        service,
        kernel: this.kernel.value(kernel),
      });
    });
  }
}
