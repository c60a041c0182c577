// A meter whose instruments a test reads back: the SDK's in-memory exporter behind a reader
// that exports only when asked, cumulative like the Prometheus exporter.
import type { Attributes, Meter } from '@opentelemetry/api';
import {
  AggregationTemporality,
  DataPointType,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
  type Histogram,
  type MetricData,
} from '@opentelemetry/sdk-metrics';

export class TestMeter {
  readonly meter: Meter;
  private readonly exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  private readonly reader = new PeriodicExportingMetricReader({
    exporter: this.exporter,
    exportIntervalMillis: 3_600_000,
  });
  private readonly provider = new MeterProvider({ readers: [this.reader] });

  constructor() {
    this.meter = this.provider.getMeter('test');
  }

  /** Every instrument with its data points, as of now. */
  async collect(): Promise<Map<string, MetricData>> {
    this.exporter.reset();
    await this.reader.forceFlush();
    const metrics = this.exporter.getMetrics().flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics));
    return new Map(metrics.map((m) => [m.descriptor.name, m]));
  }

  /** A counter's or gauge's value for exactly these attributes; undefined when it has none. */
  async value(name: string, attributes: Attributes = {}): Promise<number | undefined> {
    const metric = (await this.collect()).get(name);
    if (metric === undefined || metric.dataPointType === DataPointType.HISTOGRAM) return undefined;
    return metric.dataPoints.find((p) => same(p.attributes, attributes))?.value as number | undefined;
  }

  /** A histogram's data point for exactly these attributes. */
  async histogram(name: string, attributes: Attributes): Promise<Histogram | undefined> {
    const metric = (await this.collect()).get(name);
    if (metric?.dataPointType !== DataPointType.HISTOGRAM) return undefined;
    return metric.dataPoints.find((p) => same(p.attributes, attributes))?.value;
  }

  /** Each attribute set of an instrument, with its value (a histogram's count). */
  async points(name: string): Promise<[Attributes, number][]> {
    const metric = (await this.collect()).get(name);
    if (metric === undefined) return [];
    if (metric.dataPointType === DataPointType.HISTOGRAM)
      return metric.dataPoints.map((p) => [p.attributes, p.value.count]);
    return metric.dataPoints.map((p) => [p.attributes, p.value as number]);
  }

  close(): Promise<void> {
    return this.provider.shutdown();
  }
}

const same = (a: Attributes, b: Attributes) =>
  Object.keys(a).length === Object.keys(b).length && Object.entries(b).every(([k, v]) => a[k] === v);
