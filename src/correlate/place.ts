// Where an app span ran on this host: its process from `process.pid` on the resource (through
// `container.id` when the app has its own pid namespace), its thread from the span attribute
// that names the OS thread id. Without that attribute a span is placed on its whole process,
// except that a Node span runs on the main thread, whose tid is the pid.
import type { HostIds } from './hostpid.js';
import type { JoinableSpan, SpanPlace } from './correlator.js';

const integer = (v: unknown) => (typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : undefined);

/** Undefined when the span does not say its process, or that process is not on this host. */
export function place(span: JoinableSpan, hostIds: HostIds, threadAttribute: string): SpanPlace | undefined {
  const pid = integer(span.resource['process.pid']);
  if (pid === undefined) return undefined;
  const containerId = span.resource['container.id'];
  const hostPid = hostIds.pid(pid, typeof containerId === 'string' ? containerId : undefined);
  if (hostPid === undefined) return undefined;
  const tid = integer(span.attributes[threadAttribute]);
  if (tid !== undefined) {
    const hostTid = hostIds.tid(hostPid, tid);
    return hostTid === undefined ? { hostPid } : { hostPid, hostTid };
  }
  return span.resource['telemetry.sdk.language'] === 'nodejs' ? { hostPid, hostTid: hostPid } : { hostPid };
}
