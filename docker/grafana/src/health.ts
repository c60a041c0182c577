// Causeway health: is every stage keeping up, and is anything lost? Capture, the OTLP receiver,
// correlation, export (with the collector's own view of it) and the store, per sidecar.
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import * as units from '@grafana/grafana-foundation-sdk/units';
import {
  collectorVariable,
  dashboard,
  instanceVariable,
  prometheusVariable,
  serviceVariable,
  timeseries,
} from './grafana.js';

const on = '{instance=~"$instance"}';
const rate = (metric: string, filter = on) => `rate(${metric}${filter}[$__rate_interval])`;
/** A gauge's highest value in each interval: a spike between two points still shows. */
const peak = (metric: string) => `max by (instance) (max_over_time(${metric}${on}[$__rate_interval]))`;
/**
 * A counter of the collector's own telemetry: collectors up to v0.11x name counters with _total,
 * later ones (pull exporter, default translation) without it.
 */
const collector = (metric: string, label: string, name: string) =>
  `rate({__name__=~"${metric}(_total)?", instance=~"$collector", ${label}="${name}"}[$__rate_interval])`;

export function health(): Dashboard {
  return dashboard({
    uid: 'causeway-health',
    title: 'Causeway health',
    description:
      "Causeway's own metrics: kernel events captured and lost, app spans received, correlation, kernel spans exported, the store.",
    variables: [prometheusVariable(), instanceVariable(), serviceVariable(true), collectorVariable()],
    rows: [
      [
        'Capture',
        [
          timeseries(
            {
              title: 'Kernel events per kind',
              description:
                'Kernel events decoded from the probes, per second, per kind (causeway_kernel_events_total).',
              unit: units.EventsPerSecond,
            },
            [{ expr: `sum by (kind) (${rate('causeway_kernel_events_total')})`, legend: '{{kind}}' }],
            { stacked: true },
          ),
          timeseries(
            {
              title: 'Ring-buffer drops per kind',
              description:
                'Kernel events lost in the kernel because the ring buffer was full: Causeway did not keep up (causeway_kernel_drops_total). Should stay at 0.',
              unit: units.EventsPerSecond,
            },
            [{ expr: `sum by (kind) (${rate('causeway_kernel_drops_total')})`, legend: '{{kind}}' }],
          ),
        ],
      ],
      [
        'Receiver',
        [
          timeseries(
            {
              title: 'App spans received',
              description:
                'App spans the collector sent to Causeway over OTLP: accepted, and rejected as invalid (bad ids).',
              unit: units.CountsPerSecond,
            },
            [
              { expr: `sum(${rate('causeway_receiver_spans_accepted_total')})`, legend: 'accepted' },
              { expr: `sum(${rate('causeway_receiver_spans_rejected_total')})`, legend: 'rejected' },
            ],
          ),
          timeseries(
            {
              title: 'OTLP requests refused or bad',
              description:
                'OTLP requests refused for overload (retryable: the collector retries, then drops its copy) and requests answered with a client error.',
              unit: units.RequestsPerSecond,
            },
            [
              { expr: `sum(${rate('causeway_receiver_requests_refused_total')})`, legend: 'refused' },
              { expr: `sum(${rate('causeway_receiver_bad_requests_total')})`, legend: 'bad request' },
            ],
          ),
        ],
      ],
      [
        'Correlation',
        [
          timeseries(
            {
              title: 'Correlation rate',
              description:
                'Of the app spans joined, the share that had kernel events attached. Low when the apps run where Causeway does not capture, or their spans lack the thread id.',
              unit: units.PercentUnit,
              width: 8,
            },
            [
              {
                expr: `sum(${rate('causeway_correlator_spans_with_events_total')}) / sum(${rate('causeway_correlator_spans_joined_total')})`,
                legend: 'spans with kernel events',
              },
            ],
          ),
          timeseries(
            {
              title: 'Kernel waits attached per service',
              description:
                "Kernel waits (intervals: GPU syncs, run-queue waits, locks, I/O...) attached to the chosen services' spans.",
              unit: units.EventsPerSecond,
              width: 8,
            },
            [
              {
                expr: `sum by (service) (${rate('causeway_kernel_wait_seconds_count', '{instance=~"$instance", service=~"$service"}')})`,
                legend: '{{service}}',
              },
            ],
          ),
          timeseries(
            {
              title: 'Kernel events attached and evicted',
              description:
                'Kernel events attached to app spans, and those evicted (retention or bound) before any span took them.',
              unit: units.EventsPerSecond,
              width: 8,
            },
            [
              { expr: `sum(${rate('causeway_correlator_events_attached_total')})`, legend: 'attached' },
              { expr: `sum(${rate('causeway_correlator_events_evicted_unjoined_total')})`, legend: 'evicted unjoined' },
            ],
          ),
          timeseries(
            {
              title: 'Lag',
              description:
                'How far behind Causeway runs: time since the end of the newest kernel event received, and how long the last store write took.',
              unit: units.Seconds,
              width: 8,
            },
            [
              { expr: peak('causeway_correlator_newest_event_age_seconds'), legend: 'newest event age {{instance}}' },
              { expr: peak('causeway_store_last_flush_seconds'), legend: 'store write {{instance}}' },
            ],
          ),
          timeseries(
            {
              title: 'Kernel events held',
              description:
                'Kernel events waiting for late app spans (bounded by --max-events), highest in each interval.',
              unit: units.Short,
              width: 8,
            },
            [{ expr: peak('causeway_correlator_events_held'), legend: '{{instance}}' }],
          ),
          timeseries(
            {
              title: 'App spans pending',
              description:
                'App spans waiting for the kernel watermark before they are joined (--join-watermark-ms), highest in each interval.',
              unit: units.Short,
              width: 8,
            },
            [{ expr: peak('causeway_correlator_spans_pending'), legend: '{{instance}}' }],
          ),
        ],
      ],
      [
        'Export',
        [
          timeseries(
            {
              title: 'Kernel spans exported and dropped',
              description:
                'Kernel spans sent to the collector, and dropped (export queue full or export failed): dropped spans are missing from the traces.',
              unit: units.CountsPerSecond,
              width: 6,
            },
            [
              { expr: `sum(${rate('causeway_export_spans_sent_total')})`, legend: 'sent' },
              { expr: `sum(${rate('causeway_export_spans_dropped_total')})`, legend: 'dropped' },
            ],
          ),
          timeseries(
            {
              title: 'Collector up',
              description:
                '1 while the last export to the collector succeeded, 0 once one failed (lowest in each interval).',
              unit: units.Bool,
              width: 6,
            },
            [
              {
                expr: `min by (instance) (min_over_time(causeway_export_collector_up${on}[$__rate_interval]))`,
                legend: '{{instance}}',
              },
            ],
          ),
          timeseries(
            {
              title: 'Collector: spans to and from Causeway',
              description:
                "The collector's own count: app spans it copied to Causeway (otlp_grpc/causeway), and kernel spans it took back (otlp/kernel).",
              unit: units.CountsPerSecond,
              width: 6,
            },
            [
              {
                expr: `sum(${collector('otelcol_exporter_sent_spans', 'exporter', 'otlp_grpc/causeway')})`,
                legend: 'copied to Causeway',
              },
              {
                expr: `sum(${collector('otelcol_receiver_accepted_spans', 'receiver', 'otlp/kernel')})`,
                legend: 'kernel spans back',
              },
            ],
          ),
          timeseries(
            {
              title: 'Collector: queue to Causeway',
              description:
                "App spans queued in the collector for Causeway (otlp_grpc/causeway's sending queue), highest in each interval: it fills while Causeway is slow or down, then the collector drops the copy.",
              unit: units.Short,
              width: 6,
            },
            [
              {
                expr: `max by (instance) (max_over_time(otelcol_exporter_queue_size{instance=~"$collector", exporter="otlp_grpc/causeway"}[$__rate_interval]))`,
                legend: '{{instance}}',
              },
            ],
          ),
        ],
      ],
      [
        'Store',
        [
          timeseries(
            {
              title: 'Store size',
              description: 'Rows the embedded store holds per table, highest in each interval.',
              unit: units.Short,
              width: 8,
            },
            [
              {
                expr: `max by (table) (max_over_time(causeway_store_rows${on}[$__rate_interval]))`,
                legend: '{{table}}',
              },
            ],
          ),
          timeseries(
            {
              title: 'Store memory',
              description: "The store's memory (DuckDB), highest in each interval.",
              unit: units.BytesIEC,
              width: 8,
            },
            [{ expr: peak('causeway_store_memory_bytes'), legend: '{{instance}}' }],
          ),
          timeseries(
            {
              title: 'Store rows written, shed and expired',
              description:
                'Rows written to the store, rows shed because it fell behind (MCP answers miss them), and rows deleted by retention.',
              unit: units.RowsPerSecond,
              width: 8,
            },
            [
              {
                expr: `sum(${rate('causeway_store_events_stored_total')}) + sum(${rate('causeway_store_spans_stored_total')})`,
                legend: 'written',
              },
              { expr: `sum(${rate('causeway_store_rows_shed_total')})`, legend: 'shed' },
              { expr: `sum(${rate('causeway_store_rows_expired_total')})`, legend: 'expired' },
            ],
          ),
        ],
      ],
    ],
  });
}
