// Kernel waits by service: where the services' requests spent time below the application, from
// the kernel events Causeway attached to their spans. Time and percentiles per kind, then what
// was behind the waits: CUDA APIs and kernels, the other processes on the GPU, the tasks that
// held the CPU.
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import * as units from '@grafana/grafana-foundation-sdk/units';
import { dashboard, instanceVariable, prometheusVariable, serviceVariable, timeseries } from './grafana.js';

const on = '{instance=~"$instance", service=~"$service"}';
const rate = (metric: string) => `rate(${metric}${on}[$__rate_interval])`;
const quantile = (q: number) =>
  `histogram_quantile(${String(q)}, sum by (le, kind) (${rate('causeway_kernel_wait_seconds_bucket')}))`;
/** The ten largest, by `label`. */
const top = (label: string, metric: string) => `topk(10, sum by (${label}) (${rate(metric)}))`;

export function waits(): Dashboard {
  return dashboard({
    uid: 'causeway-kernel-waits',
    title: 'Kernel waits by service',
    description:
      "Time the services' requests spent waiting in the kernel and on the GPU, per kind, and what was behind it. From the kernel events Causeway attached to their spans.",
    variables: [prometheusVariable(), instanceVariable(), serviceVariable(true)],
    rows: [
      [
        'Time per kind',
        [
          timeseries(
            {
              title: 'Kernel wait time per kind',
              description:
                "Seconds per second the chosen services' spans spent in each kind of kernel wait (several threads can wait at once).",
              unit: units.Seconds,
            },
            [{ expr: `sum by (kind) (${rate('causeway_kernel_wait_seconds_sum')})`, legend: '{{kind}}' }],
            { stacked: true },
          ),
          timeseries(
            {
              title: 'Kernel wait time per service and kind',
              description: 'Seconds per second of kernel waits, per service and kind.',
              unit: units.Seconds,
            },
            [
              {
                expr: `sum by (service, kind) (${rate('causeway_kernel_wait_seconds_sum')})`,
                legend: '{{service}} {{kind}}',
              },
            ],
          ),
          timeseries(
            {
              title: 'p50 wait per kind',
              description: 'Median duration of one kernel wait, per kind (from the histogram buckets).',
              unit: units.Seconds,
              width: 8,
            },
            [{ expr: quantile(0.5), legend: '{{kind}}' }],
          ),
          timeseries(
            {
              title: 'p99 wait per kind',
              description: '99th percentile duration of one kernel wait, per kind (from the histogram buckets).',
              unit: units.Seconds,
              width: 8,
            },
            [{ expr: quantile(0.99), legend: '{{kind}}' }],
          ),
          timeseries(
            {
              title: 'Waits per kind',
              description: 'Kernel waits attached to spans, per second, per kind.',
              unit: units.EventsPerSecond,
              width: 8,
            },
            [{ expr: `sum by (kind) (${rate('causeway_kernel_wait_seconds_count')})`, legend: '{{kind}}' }],
          ),
        ],
      ],
      [
        'GPU',
        [
          timeseries(
            {
              title: 'Top CUDA APIs by time',
              description:
                'Seconds per second the spans spent in each CUDA API call (launches, syncs, copies, allocations).',
              unit: units.Seconds,
              width: 8,
            },
            [{ expr: top('api', 'causeway_cuda_call_seconds_total'), legend: '{{api}}' }],
          ),
          timeseries(
            {
              title: 'Top CUDA APIs by calls',
              description: 'CUDA API calls per second made inside the spans.',
              unit: units.OpsPerSecond,
              width: 8,
            },
            [{ expr: top('api', 'causeway_cuda_calls_total'), legend: '{{api}}' }],
          ),
          timeseries(
            {
              title: 'Top kernels by launches',
              description: 'CUDA kernels launched inside the spans, per second, by demangled name.',
              unit: units.OpsPerSecond,
              width: 8,
            },
            [{ expr: top('kernel', 'causeway_cuda_kernel_launches_total'), legend: '{{kernel}}' }],
          ),
          timeseries(
            {
              title: 'Top kernels by GPU wait',
              description:
                'Seconds per second of GPU synchronisation waits, by the kernel most in flight on the stream waited for.',
              unit: units.Seconds,
            },
            [{ expr: top('kernel', 'causeway_cuda_kernel_wait_seconds_total'), legend: '{{kernel}}' }],
          ),
          timeseries(
            {
              title: 'GPU co-tenants',
              description:
                "Kernel launches per second by other processes while the services' spans waited on the GPU, by process name: who else used the GPU meanwhile.",
              unit: units.OpsPerSecond,
            },
            [{ expr: top('cotenant', 'causeway_gpu_cotenant_launches_total'), legend: '{{cotenant}}' }],
          ),
        ],
      ],
      [
        'CPU',
        [
          timeseries(
            {
              title: 'Run-queue culprits',
              description:
                "Seconds per second the services' threads waited for a CPU, split among those who had it: each task that held it, by process name, for its on-CPU time within the wait; causeway (the tracer's own share), unlisted (tasks the record does not list) and unseen (beyond the CPU's run history) for the rest.",
              unit: units.Seconds,
              width: 24,
            },
            [{ expr: top('holder', 'causeway_runqueue_wait_seconds_total'), legend: '{{holder}}' }],
            { stacked: true },
          ),
        ],
      ],
    ],
  });
}
