// Who a run-queue wait's time went to, read back from the attributes the shaper wrote (which the
// store and the trace backends keep): each listed task for its on-CPU time within the wait, then
// what no listed task held, by why. The parts add up to the wait, so whatever sums them (a
// metric, the capture table) neither loses time nor gives it all to the task that held the CPU
// longest.
import * as A from '../semconv/attributes.js';
import { strings, type KernelEvent } from './events.js';

/** A task other than Causeway that held the CPU during the wait, and for how long within it. */
export interface Holder {
  pid: number;
  tid: number | null;
  /** Empty when the task exited before the wait ended. */
  comm: string | null;
  ms: number;
}

/** What a holder is called: an exited task's name is gone. */
export const holderComm = (h: Holder): string => (h.comm === null || h.comm === '' ? 'exited' : h.comm);

/**
 * The time no listed task held: `causeway`, Causeway's own processes (the tracer's share);
 * `unlisted`, what the CPU's run history saw others hold (tasks beyond the three a record lists,
 * the idle task before a migration, the waiting thread still switching out); `unseen`, what the
 * history did not cover (it keeps the last 16 runs).
 */
export type Unheld = 'causeway' | 'unlisted' | 'unseen';

export interface RunqueueParts {
  /** Most on-CPU time first. */
  holders: Holder[];
  /** In this order, those above zero. */
  rest: { part: Unheld; ms: number }[];
}

const numbers = (value: unknown): number[] =>
  Array.isArray(value) ? value.filter((v): v is number => typeof v === 'number') : [];
const number = (value: unknown) => (typeof value === 'number' ? value : undefined);

/** The tasks other than Causeway that held the CPU during a run-queue wait, with their on-CPU time within it. */
export function holders(event: KernelEvent): Holder[] {
  const a = event.attributes;
  const tids = numbers(a[A.ATTR_CAUSEWAY_SCHED_HOLDERS_TID]);
  const comms = strings(a[A.ATTR_CAUSEWAY_SCHED_HOLDERS_COMM]);
  const oncpu = numbers(a[A.ATTR_CAUSEWAY_SCHED_HOLDERS_ONCPU_MS]);
  return numbers(a[A.ATTR_CAUSEWAY_SCHED_HOLDERS_PID])
    .map((pid, i) => ({ pid, tid: tids[i] ?? null, comm: comms[i] ?? null, ms: oncpu[i] ?? 0 }))
    .filter((h) => h.ms > 0);
}

/** A run-queue wait split into parts that add up to it, in milliseconds. */
export function runqueueParts(event: KernelEvent): RunqueueParts {
  // In whole nanoseconds, as recorded: float milliseconds would leave crumbs of a part that is none.
  const ns = (ms: number | undefined) => Math.round((ms ?? 0) * 1e6);
  const waitNs = Number(event.endUnixNano - event.startUnixNano);
  const held = holders(event);
  const causewayNs = ns(number(event.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_CAUSEWAY_MS]));
  const credited = held.reduce((sum, h) => sum + ns(h.ms), causewayNs);
  // The history saw at least what it credits and at most the wait; an event that does not say leaves the rest unseen.
  const seen = Math.min(
    waitNs,
    Math.max(credited, ns(number(event.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_SEEN_MS]))),
  );
  const rest: RunqueueParts['rest'] = [
    { part: 'causeway', ms: causewayNs / 1e6 },
    { part: 'unlisted', ms: (seen - credited) / 1e6 },
    { part: 'unseen', ms: (waitNs - seen) / 1e6 },
  ];
  return { holders: held, rest: rest.filter((r) => r.ms > 0) };
}
