// Slow requests: the traces of one service in which a kernel wait lasted at least the chosen
// minimum, found in Jaeger by kernel span name (or kind) and duration, and in Tempo with TraceQL
// over the "kernel activity" summary span, whose attributes give each request's time per kind.
// Each row's trace id opens the trace.
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import * as units from '@grafana/grafana-foundation-sdk/units';
import * as A from '../../../src/semconv/attributes.js';
import {
  dashboard,
  instanceVariable,
  jaegerTable,
  jaegerVariable,
  minWaitVariable,
  prometheusVariable,
  serviceVariable,
  tempoTable,
  tempoVariable,
  timeseries,
} from './grafana.js';

const ON = '{instance=~"$instance", service="$service"}';
/** Traces listed per search. */
const LIMIT = 20;

/** Jaeger: kernel spans by name, or by kind where the name varies (the CUDA API, the device). */
const JAEGER_SEARCHES: { title: string; what: string; operation?: string; kind?: string }[] = [
  {
    title: 'GPU synchronisation waits',
    what: 'a GPU synchronisation (any sync API)',
    kind: A.CAUSEWAY_KIND_VALUE_CUDA_SYNC,
  },
  { title: 'Run-queue waits', what: 'a wait for a CPU', operation: 'run queue wait' },
  { title: 'Lock waits', what: 'a futex (lock) wait', operation: 'futex wait' },
  { title: 'Blocked off CPU', what: 'time off CPU, blocked', operation: 'off CPU (blocked)' },
  { title: 'Block I/O', what: 'a block I/O request', kind: A.CAUSEWAY_KIND_VALUE_BLOCK_IO },
];

/** Tempo: requests by their total time of one kind, from the summary span. */
const TEMPO_SEARCHES: { title: string; what: string; attribute: string }[] = [
  {
    title: 'Requests that waited on the GPU',
    what: 'GPU synchronisation',
    attribute: A.ATTR_CAUSEWAY_CUDA_SYNC_DURATION_MS,
  },
  {
    title: 'Requests that waited for a CPU',
    what: 'run-queue wait',
    attribute: A.ATTR_CAUSEWAY_SCHED_RUNQUEUE_DURATION_MS,
  },
  { title: 'Requests that waited on locks', what: 'futex wait', attribute: A.ATTR_CAUSEWAY_FUTEX_WAIT_DURATION_MS },
  {
    title: 'Requests blocked off CPU',
    what: 'blocked time off CPU',
    attribute: A.ATTR_CAUSEWAY_SCHED_BLOCKED_DURATION_MS,
  },
  { title: 'Requests that waited on block I/O', what: 'block I/O', attribute: A.ATTR_CAUSEWAY_BLOCK_IO_DURATION_MS },
];

export function slowRequests(): Dashboard {
  return dashboard({
    uid: 'causeway-slow-requests',
    title: 'Slow requests',
    description:
      "One service's traces in which a kernel wait lasted at least the chosen minimum: in Jaeger by kernel span, in Tempo by the request's time per kind. Click a trace id to open the trace.",
    variables: [
      prometheusVariable(),
      jaegerVariable(),
      tempoVariable(),
      instanceVariable(),
      serviceVariable(false),
      minWaitVariable(),
    ],
    rows: [
      [
        'Long waits',
        [
          timeseries(
            {
              title: 'Kernel waits over 100 ms per kind',
              description:
                "Kernel waits longer than 100 ms in $service's spans, per second, per kind (the histogram's count above its 0.1 s bucket): when the searches below have rows.",
              unit: units.EventsPerSecond,
              width: 24,
            },
            [
              {
                expr: `sum by (kind) (rate(causeway_kernel_wait_seconds_count${ON}[$__rate_interval])) - sum by (kind) (rate(causeway_kernel_wait_seconds_bucket{instance=~"$instance", service="$service", le="0.1"}[$__rate_interval]))`,
                legend: '{{kind}}',
              },
            ],
          ),
        ],
      ],
      [
        'Jaeger: kernel spans of at least ${min_wait:text}',
        JAEGER_SEARCHES.map(({ title, what, operation, kind }) =>
          jaegerTable(
            {
              title,
              description: `Traces of $service with a kernel span of ${what} lasting at least \${min_wait:text}, newest first. The trace id opens the trace; Duration is the whole trace's.`,
              unit: units.Microseconds,
              width: 8,
            },
            {
              service: '$service',
              ...(operation === undefined ? {} : { operation }),
              ...(kind === undefined ? {} : { tags: `${A.ATTR_CAUSEWAY_KIND}=${kind}` }),
              minDuration: '${min_wait:text}',
              limit: LIMIT,
            },
          ),
        ),
      ],
      [
        'Tempo: requests with at least ${min_wait:text} of one kind',
        TEMPO_SEARCHES.map(({ title, what, attribute }) =>
          tempoTable(
            {
              title,
              description: `Traces of $service whose request spent more than \${min_wait:text} in ${what} in total (the kernel activity span's ${attribute}). The trace id opens the trace.`,
              unit: units.Milliseconds,
              width: 8,
            },
            `{ resource.service.name = "$service" && span.${attribute} > $min_wait }`,
          ),
        ),
      ],
    ],
  });
}
