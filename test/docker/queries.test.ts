// Every query of the dashboards and the alert rules against the real thing: traced Python
// requests, slow for four kernel reasons (a GPU shared with another process, a CPU hog, a lock,
// an fsync), go through a real collector to Jaeger and to a real `causeway run`; Debian's
// Prometheus scrapes the sidecar and the collector. Then, with the template variables set to the
// values this run has (the sidecar's address, the app's service, the smallest minimum wait):
// each Prometheus query returns data, not just parses; each variable finds its value; each
// Jaeger panel's search, sent as Grafana's Jaeger datasource sends it, finds a request's trace,
// and the trace its row links to is there; each Tempo panel's TraceQL holds for a span of those
// traces (Tempo itself does not run here). Alert rules: each expression evaluates, and without
// its threshold returns data.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse } from 'yaml';
import { DASHBOARDS } from '../../docker/grafana/src/dashboards.js';
import { PROVISIONED } from '../../docker/grafana/src/grafana.js';
import { kernelAvailable, privateGpu } from '../bpf/session.js';
import {
  PROMETHEUS_BIN,
  attribute,
  getTrace,
  spansOf,
  startPrometheus,
  type OtlpTrace,
  type Prometheus,
} from '../e2e/backends.js';
import { startPipeline } from '../e2e/pipeline.js';
import { runScenarioApp, startCpuHog, startGpuHog, type Fault } from '../scenarios/faults.js';
import { dashboardQueries, interpolate, type DashboardJson, type Query, type Target, type Value } from './grafana.js';
import { ROOT, installed } from './tools.js';

const SERVICE = 'python-scenario-service';
const SCRAPE_S = 1;
/** Grafana's $__rate_interval: max($__interval + scrape interval, 4 x scrape interval), $__interval being the 1 s step. */
const RATE_INTERVAL = `${String(Math.max(1 + SCRAPE_S, 4 * SCRAPE_S))}s`;
const LAST_CPU = availableParallelism() - 1;

interface PromResult {
  status: string;
  error?: string;
  data: {
    resultType: string;
    result: { metric: Record<string, string>; values?: [number, string][]; value?: [number, string] }[];
  };
}

async function prom(
  prometheus: Prometheus,
  path: string,
  params: Record<string, string | string[]>,
): Promise<PromResult> {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) for (const v of [value].flat()) search.append(key, v);
  const response = await fetch(`${prometheus.url}${path}?${search.toString()}`);
  return (await response.json()) as PromResult;
}

/** A request slow for each of four reasons, through the collector; resolves with their trace ids. */
async function slowRequests(t: TestContext, otlp: string): Promise<string[]> {
  const run = (fault: Fault, env: Record<string, string> = {}) => runScenarioApp(t, fault, otlp, env);
  // One simulated GPU, its other user queuing long kernels before the request's short one.
  const gpu = privateGpu(t);
  const gpuHog = startGpuHog(t, gpu, { seconds: 8, kernelMs: 200, inflight: 2 });
  const traces = [(await run({ mode: 'gpu-sync', kernels: 1, kernelMs: 5 }, gpu)).trace_id];
  await gpuHog.truth;
  await startCpuHog(t, LAST_CPU, 6);
  traces.push((await run({ mode: 'cpu', cpu: LAST_CPU })).trace_id);
  traces.push((await run({ mode: 'lock-cpu' })).trace_id);
  traces.push((await run({ mode: 'fsync' })).trace_id);
  return traces;
}

/** Jaeger's trace ids drop leading zeros. */
const traceKey = (id: string) => id.replace(/^0+/, '');

interface JaegerTrace {
  traceID: string;
  spans: { operationName: string; duration: number; tags: { key: string; value: unknown }[] }[];
}

/** Go duration (as Jaeger's minDuration takes it) in microseconds. */
function microseconds(duration: string): number {
  const match = /^(\d+)(us|ms|s)$/.exec(duration);
  assert.ok(match, `a duration Jaeger takes: ${duration}`);
  return Number(match[1]) * { us: 1, ms: 1000, s: 1_000_000 }[match[2] as 'us' | 'ms' | 's'];
}

/** Grafana's logfmt tags as the JSON object its Jaeger datasource sends. */
const tagsJson = (logfmt: string) =>
  JSON.stringify(Object.fromEntries(logfmt.split(/\s+/).map((pair) => pair.split('=') as [string, string])));

test('every dashboard and alert query returns data from a real Prometheus, Jaeger finds the traces', async (t) => {
  if (!kernelAvailable(t) || !installed(t, PROMETHEUS_BIN)) return;
  const { jaeger, collector, sidecar } = await startPipeline(t);
  const instance = `127.0.0.1:${String(sidecar.metricsPort)}`;
  const prometheus = await startPrometheus({ causeway: [instance], 'otel-collector': [collector.metrics] }, SCRAPE_S);
  t.after(() => prometheus.stop());
  const start = Date.now() / 1000;

  const traceIds = await slowRequests(t, `http://${collector.otlpGrpc}`);
  const traces: OtlpTrace[] = [];
  for (const id of traceIds) {
    const trace = await getTrace(jaeger.queryUrl, id, {
      timeoutMs: 30_000,
      until: (tr) => spansOf(tr).some((s) => s.name === 'kernel activity'),
    });
    assert.ok(trace, `trace ${id} has no kernel spans in Jaeger; sidecar: ${sidecar.log()}`);
    traces.push(trace);
  }
  // The last joins reach /metrics at once; a few scrapes later Prometheus has them.
  await sleep(4 * SCRAPE_S * 1000);
  const end = Date.now() / 1000;
  const window = { start: String(start), end: String(end) };

  for (const { file } of DASHBOARDS) {
    const d = JSON.parse(readFileSync(join(ROOT, 'docker', 'grafana', 'dashboards', file), 'utf8')) as DashboardJson;
    const minWait = d.templating.list.find((v) => v.name === 'min_wait')?.options?.[0];
    const values: Record<string, Value> = {
      datasource: { value: PROVISIONED.prometheus },
      jaeger: { value: PROVISIONED.jaeger },
      tempo: { value: PROVISIONED.tempo },
      instance: { value: instance },
      collector: { value: collector.metrics },
      service: { value: SERVICE },
      __rate_interval: { value: RATE_INTERVAL },
      ...(minWait === undefined ? {} : { min_wait: { value: minWait.value, text: minWait.text } }),
    };
    const variables = d.templating.list;
    for (const q of dashboardQueries(d))
      await t.test(q.where, async () => {
        switch (q.kind) {
          case 'prometheus':
            await promQuery(prometheus, interpolate(q.text, values, variables, true), window);
            break;
          case 'variable':
            await variableQuery(prometheus, q, values, variables, window);
            break;
          case 'jaeger':
            await jaegerSearch(jaeger.queryUrl, q.target ?? {}, values, variables, { start, end }, traceIds);
            break;
          case 'tempo':
            traceqlHolds(interpolate(q.text, values, variables), traces);
            break;
        }
      });
  }

  const rules = parse(readFileSync(join(ROOT, 'docker', 'prometheus', 'alerts.yml'), 'utf8')) as {
    groups: { rules: { alert: string; expr: string }[] }[];
  };
  for (const rule of rules.groups.flatMap((g) => g.rules))
    await t.test(`alert ${rule.alert}`, async () => {
      const full = await prom(prometheus, '/api/v1/query', { query: rule.expr, time: window.end });
      assert.equal(full.status, 'success', `${rule.expr}: ${String(full.error)}`);
      const measured = rule.expr.replace(/\s*(==|!=|>=|<=|>|<)\s*[\d.]+\s*$/, '');
      assert.notEqual(measured, rule.expr, `${rule.expr} ends in a threshold`);
      const result = await prom(prometheus, '/api/v1/query', { query: measured, time: window.end });
      assert.equal(result.status, 'success', `${measured}: ${String(result.error)}`);
      assert.ok(result.data.result.length > 0, `${measured} returns no series`);
    });
});

/** A range query over the run returns at least one finite value; a metric with a service label is filtered on it. */
async function promQuery(prometheus: Prometheus, expr: string, window: { start: string; end: string }): Promise<void> {
  const result = await prom(prometheus, '/api/v1/query_range', { query: expr, ...window, step: '1' });
  assert.equal(result.status, 'success', `${expr}: ${String(result.error)}`);
  const finite = result.data.result.flatMap((s) => s.values ?? []).filter(([, v]) => Number.isFinite(Number(v)));
  assert.ok(finite.length > 0, `${expr} returned no data (${String(result.data.result.length)} series)`);
  for (const [, metric, selector] of expr.matchAll(/\b((?:causeway|otelcol)_\w+)\{([^}]*)\}/g)) {
    const series = await prom(prometheus, '/api/v1/series', { 'match[]': String(metric), ...window });
    const labelled = (series.data as unknown as Record<string, string>[]).some((s) => 'service' in s);
    if (labelled)
      assert.match(String(selector), /\bservice=/, `${String(metric)} has a service label: filter on $service`);
  }
}

/** label_values(SELECTOR, LABEL) finds this run's value of the variable. */
async function variableQuery(
  prometheus: Prometheus,
  q: Query,
  values: Record<string, Value>,
  variables: DashboardJson['templating']['list'],
  window: { start: string; end: string },
): Promise<void> {
  const match = /^label_values\((.+), (\w+)\)$/.exec(q.text);
  assert.ok(match, `${q.where}: label_values(SELECTOR, LABEL), got ${q.text}`);
  const [, selector = '', label = ''] = match;
  const series = await prom(prometheus, '/api/v1/series', {
    'match[]': interpolate(selector, values, variables, true),
    ...window,
  });
  assert.equal(series.status, 'success', String(series.error));
  const found = new Set((series.data as unknown as Record<string, string>[]).map((s) => s[label]));
  const name = q.where.split('$').at(-1) ?? '';
  assert.ok(found.has(values[name]?.value), `${q.where}: ${[...found].join(', ')}`);
}

/** The search Grafana's Jaeger datasource sends finds one of the requests, and the trace its row links to is there. */
async function jaegerSearch(
  queryUrl: string,
  target: Target,
  values: Record<string, Value>,
  variables: DashboardJson['templating']['list'],
  window: { start: number; end: number },
  traceIds: string[],
): Promise<void> {
  const field = (text: string | undefined) => (text === undefined ? undefined : interpolate(text, values, variables));
  const search = {
    service: field(target.service),
    operation: field(target.operation),
    tags: target.tags === undefined ? undefined : tagsJson(field(target.tags) ?? ''),
    minDuration: field(target.minDuration),
    limit: String(target.limit),
    start: String(Math.floor(window.start * 1e6)),
    end: String(Math.ceil(window.end * 1e6)),
    lookback: 'custom',
  };
  const params = new URLSearchParams(
    Object.entries(search).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== ''),
  );
  const response = await fetch(`${queryUrl}/api/traces?${params.toString()}`);
  assert.equal(response.status, 200, await response.clone().text());
  const found = ((await response.json()) as { data: JaegerTrace[] }).data.map((tr) => traceKey(tr.traceID));
  const ours = found.filter((id) => traceIds.map(traceKey).includes(id));
  assert.ok(ours.length > 0, `${params.toString()} found ${found.join(', ') || 'nothing'}`);
  // A row's link: the Jaeger datasource's trace query with the row's trace id.
  const linked = await fetch(`${queryUrl}/api/traces/${String(ours[0])}`);
  const trace = ((await linked.json()) as { data: JaegerTrace[] }).data[0];
  const tags = search.tags === undefined ? {} : (JSON.parse(search.tags) as Record<string, string>);
  const minUs = microseconds(search.minDuration ?? '0us');
  assert.ok(
    trace?.spans.some(
      (s) =>
        (search.operation === undefined || s.operationName === search.operation) &&
        Object.entries(tags).every(([k, v]) => s.tags.some((tag) => tag.key === k && String(tag.value) === v)) &&
        s.duration >= minUs,
    ),
    `the linked trace ${String(ours[0])} has no span the search asked for`,
  );
}

/** TraceQL of the form the dashboards use, `{ resource.service.name = "S" && span.ATTR > N }`, holds for a span of the traces. */
function traceqlHolds(traceql: string, traces: OtlpTrace[]): void {
  const match = /^\{ resource\.service\.name = "([^"]+)" && span\.([\w.]+) > (\d+) \}$/.exec(traceql);
  assert.ok(match, `this test evaluates { resource.service.name = "S" && span.ATTR > N }, got ${traceql}`);
  const [, service, key = '', threshold] = match;
  const holds = traces.some((trace) =>
    trace.resourceSpans.some(
      (r) =>
        r.resource.attributes?.some((a) => a.key === 'service.name' && a.value.stringValue === service) === true &&
        r.scopeSpans.some((s) => s.spans.some((span) => Number(attribute(span, key)) > Number(threshold))),
    ),
  );
  assert.ok(holds, `no span of the requests' traces matches ${traceql}`);
}
