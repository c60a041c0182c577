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

export async function sidecarStatus(p: ReportingParts) {
  const store = await p.store.status();
  return {
    capture: p.capture.counters(),
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
    ...(
      [
        ['queue_full', e.dropped.queueFull],
        ['rejected', e.dropped.rejected],
        ['shutdown', e.dropped.shutdown],
      ] as const
    ).map(([reason, n]): Sample => [
      'causeway_export_spans_dropped_total',
      'Kernel spans dropped: the oldest past the queue bounds (queue_full), refused by the collector for good (rejected), left at the shutdown deadline (shutdown).',
      n,
      { reason },
    ]),
    ['causeway_export_failures_total', 'Export calls that failed (retryable ones are sent again).', e.exportFailures],
    ['causeway_export_queue_spans', 'Kernel spans waiting for the collector.', e.queued],
    ['causeway_export_queue_bytes', 'Their approximate OTLP-encoded size.', e.queuedBytes],
    ['causeway_export_collector_up', '1 when the last export succeeded.', e.collectorUp ? 1 : 0],
    ['causeway_store_events_stored_total', 'Kernel events written to the store.', st.eventsStored],
    ['causeway_store_spans_stored_total', 'App spans written to the store.', st.spansStored],
    ['causeway_store_rows_shed_total', 'Rows refused because the store fell behind.', st.rowsShed],
    ['causeway_store_rows_expired_total', 'Rows deleted by the store retention.', st.rowsExpired],
    ['causeway_store_flush_errors_total', 'Store writes that failed.', st.flushErrors],
    ['causeway_store_rows_buffered', 'Rows waiting to be written to the store.', st.rowsBuffered],
  ];
}
