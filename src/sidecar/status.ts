// What the sidecar says about itself: the MCP status tool's answer, composed from each part's
// own status, and the Prometheus samples of the parts' counters.
import type { Correlator } from '../correlate/correlator.js';
import type { Sample } from '../export/metrics.js';
import type { SpanSender } from '../export/sender.js';
import type { KernelCapture } from '../kernel/capture.js';
import type { AppSpan, OtlpReceiver } from '../otlp/index.js';
import type { Store } from '../store/store.js';

export interface ReportingParts {
  capture: KernelCapture;
  receiver: OtlpReceiver;
  correlator: Correlator<AppSpan>;
  sender: SpanSender;
  store: Store;
  exportUrl: string;
}

/** GPU processes the status lists; it counts them all. */
const STATUS_GPU_PROCESSES = 64;

export async function sidecarStatus(p: ReportingParts) {
  const store = await p.store.status();
  return {
    capture: p.capture.counters(),
    gpu: p.capture.gpuProcesses(STATUS_GPU_PROCESSES),
    correlator: p.correlator.counters(),
    store,
    export: { ...p.sender.counters(), url: p.exportUrl },
    receiver: p.receiver.counters(),
    lag: { ...p.correlator.lag(), storeRowsBuffered: store.rowsBuffered, storeLastFlushMs: store.lastFlushMs },
  };
}

export type SidecarStatus = Awaited<ReturnType<typeof sidecarStatus>>;

export function metricSamples(p: ReportingParts): Sample[] {
  const k = p.capture.counters();
  const r = p.receiver.counters();
  const c = p.correlator.counters();
  const e = p.sender.counters();
  const st = p.store.counters();
  return [
    ...Object.entries(k.events).map(([kind, n]): Sample => [
      'causeway_kernel_events_total',
      'Kernel events decoded, per kind.',
      n,
      { kind },
    ]),
    ...Object.entries(k.drops).map(([kind, n]): Sample => [
      'causeway_kernel_drops_total',
      'Kernel events lost to a full ring buffer, per kind.',
      n,
      { kind },
    ]),
    ['causeway_gpu_processes', 'Processes found using CUDA (followed, their libraries probed).', k.gpuProcesses],
    ['causeway_receiver_spans_accepted_total', 'App spans accepted over OTLP.', r.spansAccepted],
    ['causeway_receiver_spans_rejected_total', 'App spans rejected as invalid.', r.spansRejected],
    ['causeway_receiver_requests_refused_total', 'OTLP requests refused for overload (retryable).', r.requestsRefused],
    ['causeway_receiver_bad_requests_total', 'OTLP requests answered with a client error.', r.badRequests],
    ['causeway_correlator_spans_joined_total', 'App spans joined with kernel events.', c.spansJoined],
    ['causeway_correlator_spans_with_events_total', 'App spans that had kernel events.', c.spansWithEvents],
    ['causeway_correlator_spans_not_here_total', 'App spans from processes not on this host.', c.spansNotHere],
    ['causeway_correlator_events_attached_total', 'Kernel events attached to app spans.', c.eventsAttached],
    [
      'causeway_correlator_events_evicted_unjoined_total',
      'Kernel events evicted before any span took them.',
      c.eventsEvictedUnjoined,
    ],
    ['causeway_correlator_events_held', 'Kernel events waiting for late spans.', c.eventsHeld],
    ['causeway_correlator_spans_pending', 'App spans waiting for the kernel watermark.', c.spansPending],
    ['causeway_export_spans_sent_total', 'Kernel spans exported.', e.spansSent],
    ['causeway_export_spans_dropped_total', 'Kernel spans dropped (queue full or export failed).', e.spansDropped],
    ['causeway_export_collector_up', '1 when the last export succeeded.', e.collectorUp ? 1 : 0],
    ['causeway_store_events_stored_total', 'Kernel events written to the store.', st.eventsStored],
    ['causeway_store_spans_stored_total', 'App spans written to the store.', st.spansStored],
    ['causeway_store_rows_shed_total', 'Rows refused because the store fell behind.', st.rowsShed],
    ['causeway_store_rows_expired_total', 'Rows deleted by the store retention.', st.rowsExpired],
    ['causeway_store_flush_errors_total', 'Store writes that failed.', st.flushErrors],
    ['causeway_store_rows_buffered', 'Rows waiting to be written to the store.', st.rowsBuffered],
  ];
}
