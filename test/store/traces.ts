// Spans and kernel events written the way the sidecar writes them, for tests and the benchmark
// that need a store holding known traces.
import type { KernelEvent } from '../../src/kernel/events.js';
import type { AppSpan } from '../../src/otlp/index.js';
import * as A from '../../src/semconv/attributes.js';
import type { PlacedSpan } from '../../src/correlate/correlator.js';
import { IN_MEMORY, Store, type StoreOptions } from '../../src/store/store.js';

export const MS = 1_000_000n;
export const T0 = BigInt(Date.now()) * MS - 60_000n * MS;

export const ids = (n: number) => ({
  traceId: n.toString(16).padStart(32, '0'),
  spanId: n.toString(16).padStart(16, '0'),
});

export function appSpan(spec: {
  trace: number;
  span: number;
  parent?: number;
  name?: string;
  service?: string;
  start: bigint;
  end: bigint;
  pid: number;
  tid?: number;
}): PlacedSpan<AppSpan> {
  const span: AppSpan = {
    traceId: ids(spec.trace).traceId,
    spanId: ids(spec.span).spanId,
    ...(spec.parent === undefined ? {} : { parentSpanId: ids(spec.parent).spanId }),
    name: spec.name ?? 'handle-request',
    kind: 2,
    startUnixNano: spec.start,
    endUnixNano: spec.end,
    attributes: spec.tid === undefined ? {} : { [A.ATTR_CAUSEWAY_THREAD_TID]: spec.tid },
    resource: { 'service.name': spec.service ?? 'api', 'process.pid': spec.pid },
    serviceName: spec.service ?? 'api',
  };
  return { span, place: { hostPid: spec.pid, ...(spec.tid === undefined ? {} : { hostTid: spec.tid }) } };
}

export function kernelEvent(
  kind: KernelEvent['kind'],
  task: { pid: number; tid: number; comm?: string },
  start: bigint,
  end: bigint,
  attributes: KernelEvent['attributes'] = {},
): KernelEvent {
  return {
    kind,
    pid: task.pid,
    tid: task.tid,
    comm: task.comm ?? 'app',
    startUnixNano: start,
    endUnixNano: end,
    attributes,
  };
}

export const waker = (
  kind: 'futex' | 'sched',
  task: { pid: number; tid: number; comm: string },
): KernelEvent['attributes'] =>
  kind === 'futex'
    ? {
        [A.ATTR_CAUSEWAY_FUTEX_WAKER_PID]: task.pid,
        [A.ATTR_CAUSEWAY_FUTEX_WAKER_TID]: task.tid,
        [A.ATTR_CAUSEWAY_FUTEX_WAKER_COMM]: task.comm,
      }
    : {
        [A.ATTR_CAUSEWAY_SCHED_WAKER_PID]: task.pid,
        [A.ATTR_CAUSEWAY_SCHED_WAKER_TID]: task.tid,
        [A.ATTR_CAUSEWAY_SCHED_WAKER_COMM]: task.comm,
      };

type Task = { pid: number; tid: number; comm: string };

/** A run-queue wait's attributes: the tasks that held its CPU, each with its on-CPU ms within the wait, most first. */
export const holders = (...held: [Task, number][]) => ({
  [A.ATTR_CAUSEWAY_SCHED_CPU]: 1,
  ...(held[0] === undefined
    ? {}
    : {
        [A.ATTR_CAUSEWAY_SCHED_HOLDER_PID]: held[0][0].pid,
        [A.ATTR_CAUSEWAY_SCHED_HOLDER_TID]: held[0][0].tid,
        [A.ATTR_CAUSEWAY_SCHED_HOLDER_COMM]: held[0][0].comm,
      }),
  [A.ATTR_CAUSEWAY_SCHED_HOLDERS_PID]: held.map(([t]) => t.pid),
  [A.ATTR_CAUSEWAY_SCHED_HOLDERS_TID]: held.map(([t]) => t.tid),
  [A.ATTR_CAUSEWAY_SCHED_HOLDERS_COMM]: held.map(([t]) => t.comm),
  [A.ATTR_CAUSEWAY_SCHED_HOLDERS_ONCPU_MS]: held.map(([, ms]) => ms),
});

/** A run-queue wait behind one task, which held the CPU `ms` of it. */
export const holder = (task: Task, ms = 1) => holders([task, ms]);

/** A store holding these spans and events, flushed. */
export async function storeWith(
  spans: PlacedSpan<AppSpan>[],
  events: KernelEvent[],
  options: Partial<StoreOptions> = {},
): Promise<Store> {
  // Bounds that none of these small stores reaches, unless a test sets its own.
  const store = await Store.open({
    path: IN_MEMORY,
    retentionMs: 15 * 60_000,
    maxEvents: 1_000_000,
    maxSpans: 100_000,
    maxBytes: 2 ** 30,
    flushMs: 60_000,
    ...options,
  });
  store.addEvents(events);
  store.addSpans(spans);
  await store.flush();
  return store;
}
