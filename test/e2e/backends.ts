// The real backends the end-to-end tests run against: Jaeger, an otelcol built from
// otel-config/builder-config.yaml, and the Python venv of the traced apps. test/setup.sh builds
// them into the cache below; everything here binds to loopback on free ports and is stopped by
// the stop() it returns.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Where test/setup.sh puts the tools (outside the repo, so clones and CI runs share it). */
const CACHE = '/var/cache/causeway';
const JAEGER_BIN = join(CACHE, 'bin', 'jaeger');
export const PROMETHEUS_BIN = join(CACHE, 'bin', 'prometheus');
const OTELCOL_BIN = join(CACHE, 'bin', 'otelcol');
export const pythonBin = join(CACHE, 'venv', 'bin', 'python');

const READY_TIMEOUT_MS = 30_000;
const POLL_MS = 100;

/** OTLP/JSON as Jaeger's /api/v3 returns it: ids in hex, times as decimal strings. */
export interface OtlpAnyValue {
  stringValue?: string;
  intValue?: string;
  doubleValue?: number;
  boolValue?: boolean;
}
export interface OtlpKeyValue {
  key: string;
  value: OtlpAnyValue;
}
export interface OtlpSpan {
  traceId: string;
  spanId: string;
  /** Absent on a root span. */
  parentSpanId?: string;
  name: string;
  kind?: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes?: OtlpKeyValue[];
  events?: { timeUnixNano: string; name: string; attributes?: OtlpKeyValue[] }[];
  status?: { code?: number; message?: string };
}
export interface OtlpTrace {
  resourceSpans: {
    resource: { attributes?: OtlpKeyValue[] };
    scopeSpans: { scope: { name: string; version?: string }; spans: OtlpSpan[] }[];
  }[];
}

/** Every span of a trace: Jaeger returns each span in its own resourceSpans entry. */
export const spansOf = (trace: OtlpTrace): OtlpSpan[] =>
  trace.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans));

/** A span attribute's value as a number, string or boolean; undefined when the span has none. */
export const attribute = (span: OtlpSpan, key: string) => {
  const value = span.attributes?.find((a) => a.key === key)?.value;
  return (
    value?.stringValue ??
    value?.doubleValue ??
    (value?.intValue === undefined ? value?.boolValue : Number(value.intValue))
  );
};

export interface Backend {
  stop(): Promise<void>;
}

export interface Jaeger extends Backend {
  /** host:port of Jaeger's OTLP gRPC receiver. */
  otlpGrpc: string;
  /** Base URL of Jaeger's query HTTP API (and UI). */
  queryUrl: string;
}

export interface Collector extends Backend {
  /** host:port of the apps' OTLP gRPC and HTTP receiver. */
  otlpGrpc: string;
  otlpHttp: string;
  /** host:port of the receiver that takes Causeway's kernel spans back. */
  kernelGrpc: string;
  /** host:port of the collector's own metrics (Prometheus text at /metrics). */
  metrics: string;
}

export interface Prometheus extends Backend {
  /** Base URL of its HTTP API. */
  url: string;
}

/** The lowest port freePort picks. */
const LOWEST_PORT = 10_000;
/** Ports freePort gave this process: not given twice, as its callers ask for several at once. */
const given = new Set<number>();

/** Whether a loopback listener can be opened on the port now (it is closed again). */
export async function canListen(port: number): Promise<boolean> {
  const server = createServer();
  const listening = await new Promise<boolean>((resolve) => {
    server.once('error', () => {
      resolve(false);
    });
    server.listen(port, '127.0.0.1', () => {
      resolve(true);
    });
  });
  if (listening) await new Promise((resolve) => server.close(resolve));
  return listening;
}

/**
 * A loopback port that was free a moment ago, below the kernel's ephemeral range. A port the OS
 * picks is in that range, and a client retrying a connect to it before its server listens (the
 * sidecar exporting to the collector's kernel receiver, which starts after it) can be given the
 * same port as its own source and connect to itself, holding it: the server's bind then failed
 * with "address already in use" (CI, test/e2e/pipeline.test).
 */
export async function freePort(): Promise<number> {
  const [ephemeral] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  const below = (ephemeral ?? 32_768) - LOWEST_PORT;
  if (!(below > 0))
    throw new Error(`the ephemeral ports begin at ${String(ephemeral)}: no room below them for a test's servers`);
  for (let tries = 0; tries < 100; tries++) {
    const port = LOWEST_PORT + Math.floor(Math.random() * below);
    if (given.has(port) || !(await canListen(port))) continue;
    given.add(port);
    return port;
  }
  throw new Error(`no free loopback port between ${String(LOWEST_PORT)} and ${String(ephemeral)} in 100 tries`);
}

const freeAddress = async () => `127.0.0.1:${await freePort()}`;

/** Jaeger all-in-one with in-memory storage, receiving OTLP gRPC only, on free ports. */
export async function startJaeger(): Promise<Jaeger> {
  const [otlpGrpc, queryHttp, queryGrpc] = [await freeAddress(), await freeAddress(), await freeAddress()];
  // Jaeger's built-in all-in-one config listens on fixed ports (4317, 13133, 8888, ...), which
  // the collector and parallel runs would collide with; this one listens only where we say.
  const config = `
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: ${queryHttp}
    grpc:
      endpoint: ${queryGrpc}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: ${otlpGrpc}
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`;
  const dir = await mkdtemp(join(tmpdir(), 'causeway-jaeger-'));
  const configPath = join(dir, 'jaeger.yaml');
  await writeFile(configPath, config);
  const queryUrl = `http://${queryHttp}`;
  const child = startTool(JAEGER_BIN, ['--config', configPath], {});
  const stop = async () => {
    await child.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    // Extensions start before receivers, so the query API being up does not mean OTLP is.
    await child.until(async () => (await httpOk(`${queryUrl}/api/v3/services`)) && (await tcpOpen(otlpGrpc)), 'jaeger');
  } catch (error) {
    await stop();
    throw error;
  }
  return { otlpGrpc, queryUrl, stop };
}

/**
 * Starts the cached otelcol with a configuration from otel-config/. Its own addresses
 * (OTELCOL_OTLP_GRPC, OTELCOL_OTLP_HTTP, OTELCOL_KERNEL_GRPC, OTELCOL_HEALTH, OTELCOL_METRICS_PORT)
 * are free ports unless `env` sets them; `env` also points its exporters, e.g.
 * { JAEGER_OTLP_GRPC: jaeger.otlpGrpc, CAUSEWAY_OTLP_GRPC: '127.0.0.1:4417' }.
 */
export async function startCollector(configPath: string, env: Record<string, string> = {}): Promise<Collector> {
  const settings = {
    OTELCOL_OTLP_GRPC: await freeAddress(),
    OTELCOL_OTLP_HTTP: await freeAddress(),
    OTELCOL_KERNEL_GRPC: await freeAddress(),
    OTELCOL_HEALTH: await freeAddress(),
    OTELCOL_METRICS_PORT: String(await freePort()),
    ...env,
  };
  const child = startTool(OTELCOL_BIN, ['--config', configPath], settings);
  try {
    // The health_check extension answers 200 only once every pipeline has started.
    await child.until(() => httpOk(`http://${settings.OTELCOL_HEALTH}/`), 'otelcol');
  } catch (error) {
    await child.stop();
    throw error;
  }
  return {
    otlpGrpc: settings.OTELCOL_OTLP_GRPC,
    otlpHttp: settings.OTELCOL_OTLP_HTTP,
    kernelGrpc: settings.OTELCOL_KERNEL_GRPC,
    metrics: `127.0.0.1:${settings.OTELCOL_METRICS_PORT}`,
    stop: () => child.stop(),
  };
}

/**
 * Debian's Prometheus server (test/setup.sh unpacks it; no service is installed), scraping each
 * job's targets every `scrapeIntervalS` seconds, with its data in a directory removed by stop().
 */
export async function startPrometheus(
  jobs: Record<string, string[]>,
  scrapeIntervalS: number,
  ruleFiles: string[] = [],
): Promise<Prometheus> {
  const listen = await freeAddress();
  const dir = await mkdtemp(join(tmpdir(), 'causeway-prometheus-'));
  const config = {
    global: { scrape_interval: `${String(scrapeIntervalS)}s`, evaluation_interval: `${String(scrapeIntervalS)}s` },
    rule_files: ruleFiles,
    scrape_configs: Object.entries(jobs).map(([job, targets]) => ({
      job_name: job,
      static_configs: [{ targets }],
    })),
  };
  // JSON is YAML: no YAML writer needed.
  await writeFile(join(dir, 'prometheus.yml'), JSON.stringify(config));
  const child = startTool(
    PROMETHEUS_BIN,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=${listen}`,
    ],
    {},
  );
  const url = `http://${listen}`;
  const stop = async () => {
    await child.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await child.until(() => httpOk(`${url}/-/ready`), 'prometheus');
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, stop };
}

/**
 * Fetches a trace from Jaeger's /api/v3/traces/{id}. Spans reach Jaeger seconds after they end
 * (SDK, collector and Jaeger all batch), so it retries until the trace is found and, if given,
 * `until` holds; then it returns the trace as last seen, or undefined if it was never found.
 */
export async function getTrace(
  queryUrl: string,
  traceIdHex: string,
  { timeoutMs = 15_000, until = () => true }: { timeoutMs?: number; until?: (trace: OtlpTrace) => boolean } = {},
): Promise<OtlpTrace | undefined> {
  const deadline = Date.now() + timeoutMs;
  let last: OtlpTrace | undefined;
  for (;;) {
    const response = await fetch(`${queryUrl}/api/v3/traces/${traceIdHex}`);
    if (response.ok) {
      last = ((await response.json()) as { result: OtlpTrace }).result;
      if (until(last)) return last;
    } else if (response.status !== 404) {
      throw new Error(`jaeger GET trace ${traceIdHex}: ${response.status} ${await response.text()}`);
    } else {
      await response.body?.cancel();
    }
    if (Date.now() > deadline) return last;
    await sleep(250);
  }
}

/** Every span Jaeger holds of a service's traces that started after `since` (up to 1000 traces). */
export async function serviceSpans(queryUrl: string, service: string, since: Date): Promise<OtlpSpan[]> {
  const params = new URLSearchParams({
    'query.service_name': service,
    'query.start_time_min': since.toISOString(),
    'query.start_time_max': new Date(Date.now() + 60_000).toISOString(),
    'query.num_traces': '1000',
  });
  const response = await fetch(`${queryUrl}/api/v3/traces?${params.toString()}`);
  if (response.status === 404) {
    await response.body?.cancel();
    return [];
  }
  if (!response.ok) throw new Error(`jaeger find traces of ${service}: ${response.status} ${await response.text()}`);
  return spansOf(((await response.json()) as { result: OtlpTrace }).result);
}

interface Tool {
  /** Polls `ready` until it is true; fails early, with the tool's output, if the tool exits. */
  until(ready: () => Promise<boolean>, name: string): Promise<void>;
  /** SIGTERM, then SIGKILL if it has not exited within 5 s. */
  stop(): Promise<void>;
}

function startTool(bin: string, args: string[], env: Record<string, string>): Tool {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run bash test/setup.sh`);
  const child: ChildProcess = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  // Kept for the error message when it fails to start; both tools log to stderr.
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-8192);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  let running = true;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      running = false;
      resolve();
    });
  });
  return {
    async until(ready, name) {
      const deadline = Date.now() + READY_TIMEOUT_MS;
      while (!(await ready())) {
        if (!running) throw new Error(`${name} exited before it was ready:\n${output}`);
        if (Date.now() > deadline) throw new Error(`${name} not ready after ${READY_TIMEOUT_MS} ms:\n${output}`);
        await sleep(POLL_MS);
      }
    },
    async stop() {
      if (!running) return;
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(kill);
    },
  };
}

async function httpOk(url: string): Promise<boolean> {
  try {
    const response = await fetch(url);
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}

function tcpOpen(address: string): Promise<boolean> {
  const [host, port] = address.split(':');
  return new Promise((resolve) => {
    const socket = createConnection({ host, port: Number(port) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      resolve(false);
    });
  });
}
