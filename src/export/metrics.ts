// Causeway's own metrics, through the OpenTelemetry metrics SDK: each part records on
// instruments of the one Meter it is handed, and the SDK's Prometheus exporter renders them on
// --metrics (label values escaped, histograms with their buckets), so that nothing is lost
// silently. The provider is the sidecar's own, never the global one: tests read a part's
// instruments with a reader of their own.
import http from 'node:http';
import { PerformanceObserver, constants as perf, type NodeGCPerformanceDetail } from 'node:perf_hooks';
import v8 from 'node:v8';
import type { Attributes, Meter, Observable } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import { SCOPE } from './spans.js';

/** An instrument whose value a part reads at each collection: a counter unless `gauge`. */
export interface Observed {
  name: string;
  description: string;
  unit?: string;
  gauge?: true;
}

export const counter = (name: string, description: string, unit?: string): Observed => ({
  name,
  description,
  ...(unit === undefined ? {} : { unit }),
});
export const gauge = (name: string, description: string, unit?: string): Observed => ({
  ...counter(name, description, unit),
  gauge: true,
});

/** A value per attribute set; undefined: nothing to report this time. */
export type Reading = number | [value: number, attributes: Attributes][] | undefined;

/**
 * Registers a part's counters on `meter`: one observable instrument per key, all read by one
 * call of `read` per collection, so the values of one scrape come from one snapshot.
 */
export function observe<K extends string>(
  meter: Meter,
  instruments: Record<K, Observed>,
  read: () => Record<NoInfer<K>, Reading> | Promise<Record<NoInfer<K>, Reading>>,
): void {
  const entries = Object.entries<Observed>(instruments).map(([key, { name, description, unit, gauge }]) => {
    const options = { description, ...(unit === undefined ? {} : { unit }) };
    const instrument: Observable =
      gauge === true ? meter.createObservableGauge(name, options) : meter.createObservableCounter(name, options);
    return [key as K, instrument] as const;
  });
  meter.addBatchObservableCallback(
    async (result) => {
      const values = await read();
      for (const [key, instrument] of entries) {
        const value: Reading = values[key];
        if (typeof value === 'number') result.observe(instrument, value);
        else for (const [n, attributes] of value ?? []) result.observe(instrument, n, attributes);
      }
    },
    entries.map(([, instrument]) => instrument),
  );
}

export interface MetricsEndpoint {
  /** The bound port (a configured port 0 picks a free one). */
  port: number;
  close: () => Promise<void>;
}

export class SidecarMetrics {
  readonly meter: Meter;
  // The exporter's own server takes no port 0 (it reads 0 as "the default"): it renders, and
  // serve() below listens.
  private readonly exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
  private readonly provider: MeterProvider;
  /** The heap in use just after the latest full (major) collection: what was live then. */
  private liveHeapBytes: number | undefined;
  private readonly gcObserver = new PerformanceObserver((list) => {
    // A 'gc' entry's detail is a NodeGCPerformanceDetail, which the entry's type does not say.
    const major = list
      .getEntries()
      .some((entry) => (entry as { detail?: NodeGCPerformanceDetail }).detail?.kind === perf.NODE_PERFORMANCE_GC_MAJOR);
    if (major) this.liveHeapBytes = v8.getHeapStatistics().used_heap_size;
  });

  constructor() {
    this.provider = new MeterProvider({
      resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: SCOPE.name, [ATTR_SERVICE_VERSION]: SCOPE.version }),
      readers: [this.exporter],
    });
    this.meter = this.provider.getMeter(SCOPE.name, SCOPE.version);
    // What a long run would leak first: the heap, and handles left open (sockets, timers, children).
    // The heap in use includes garbage not yet collected; after a full collection it is what is live.
    this.gcObserver.observe({ entryTypes: ['gc'] });
    observe(
      this.meter,
      {
        rss: gauge('causeway_resident_memory_bytes', "The sidecar's resident memory (RSS).", 'By'),
        heap: gauge('causeway_heap_used_bytes', "The sidecar's JavaScript heap in use.", 'By'),
        heapTotal: gauge(
          'causeway_heap_total_bytes',
          "The sidecar's JavaScript heap as allocated: in use, garbage not yet collected and free space.",
          'By',
        ),
        external: gauge(
          'causeway_external_memory_bytes',
          'Memory outside the JavaScript heap held by its objects (buffers, native handles).',
          'By',
        ),
        liveHeap: gauge(
          'causeway_heap_live_bytes',
          'The JavaScript heap in use just after the latest full garbage collection: what was live.',
          'By',
        ),
        handles: gauge('causeway_active_handles', 'Handles and requests keeping the event loop alive.'),
      },
      () => {
        const memory = process.memoryUsage();
        return {
          rss: memory.rss,
          heap: memory.heapUsed,
          heapTotal: memory.heapTotal,
          external: memory.external,
          liveHeap: this.liveHeapBytes,
          handles: process.getActiveResourcesInfo().length,
        };
      },
    );
  }

  /** Serves the Prometheus text format at /metrics on host:port; anything else is a 404. */
  async serve(host: string, port: number): Promise<MetricsEndpoint> {
    const server = http.createServer((request, response) => {
      if (request.url !== '/metrics') {
        response.writeHead(404).end('see /metrics\n');
        return;
      }
      this.exporter.getMetricsRequestHandler(request, response);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, resolve);
    });
    const address = server.address();
    return {
      port: typeof address === 'object' && address !== null ? address.port : port,
      close: async () => {
        await new Promise((resolve) => server.close(resolve));
        this.gcObserver.disconnect();
        await this.provider.shutdown();
      },
    };
  }
}
