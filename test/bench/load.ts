// Issue 11's whole-sidecar load: the real `causeway run` (node and its loader) following
// futex ping-pong pairs and a kernel-launch storm on the simulated CUDA runtime, while their app,
// a process of its own (load-app.ts), sends spans over OTLP/HTTP (protobuf, in requests of a
// fixed size, on a fixed schedule whatever the answers take), and this process asks explain_trace
// through a real MCP client. The sidecar exports kernel spans to a real collector
// (otel-config/collector.yaml) whose exporter points back at a receiver here, which notes when
// each sampled trace's first kernel span arrives. Over a window that starts once the sidecar follows every workload, it reads the
// sidecar's and the loader's CPU from /proc/PID/stat, their RSS every quarter second, and the
// sidecar's counters from its /metrics; every counter of something lost is read at the end,
// over the whole run. Counters a version of the sidecar lacks come back undefined, not 0.
import { execFileSync, fork } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startOtlpReceiver } from '../../src/otlp/index.js';
import { COMMAND, ROOT, startWorkload, type Workload } from '../bpf/session.js';
import { loaderPid, metricValue, startSidecar, until, type Sidecar } from '../cli/sidecar.js';
import { freePort, startCollector } from '../e2e/backends.js';
import type { AppReport, AppSent, AppSettings } from './load-app.js';
import { percentile } from './pipeline.js';

export interface LoadOptions {
  /** How long the measured window lasts. */
  seconds: number;
  /** Futex ping-pong processes (two threads each). */
  pingPongPairs: number;
  /** Context switches per second asked of all the pairs together; 0: as fast as they go (a flood). */
  switchesPerS: number;
  /** Kernel launches per second asked of the launch storm; 0: no storm. */
  launchesPerS: number;
  spansPerS: number;
  spansPerRequest: number;
  /** Where the sidecar writes CPU profiles of its threads (main, store worker) as it exits (node's --cpu-prof); none when undefined. */
  profileDir?: string | undefined;
  log: (line: string) => void;
}

/** Latencies in ms, as p50 and p99, and how many there were. */
export interface Latency {
  count: number;
  p50Ms: number;
  p99Ms: number;
}

export interface LoadReport {
  /** The measured window, in seconds. */
  windowS: number;
  /**
   * What the workloads achieved over their whole run, per their own truth; and the kernel events
   * they offered the sidecar over it: decoded, dropped in the ring buffers or shed, per second.
   */
  offered: { switchesPerS: number; launchesPerS: number; events: number; eventsPerS: number };
  /** Kernel events the capture took in over the window, a summary counting as the events it sums (causeway_kernel_events_covered), per kind too. */
  delivered: { events: number; perS: number; byKind: Record<string, number> };
  /** Over the whole run, from the last scrape; undefined where the sidecar has no such counter. */
  lost: {
    ringBufferDrops: number | undefined;
    ringBufferDropsByKind: Record<string, number>;
    /** Events shed while the sidecar was behind, in the kernel and in the sidecar. */
    kernelShed: number | undefined;
    /** Read more than the lag bound after they ended, shed undecoded. */
    kernelShedLate: number | undefined;
    /** Held kernel events evicted before their retention ended because --max-events were held. */
    evictedOverBound: number | undefined;
    storeRowsShed: number | undefined;
    /** Written to the store over the whole run, what its rows shed are out of. */
    storeEventsStored: number | undefined;
    storeSpansStored: number | undefined;
    receiverRequestsRefused: number | undefined;
    correlatorSpansRefused: number | undefined;
    exportSpansDropped: number | undefined;
    lostInLoaderGaps: number | undefined;
    loaderRestarts: number | undefined;
  };
  /** CPU over the window, in CPU seconds, node and loader. */
  cpu: { sidecarS: number; loaderS: number; cores: number; eventsPerCpuS: number };
  /** node plus loader, sampled every RSS_EVERY_MS; the peak of the sums, and the last. */
  rss: { peakBytes: number; finalBytes: number };
  /** Where node's RSS went at the end of the window (MemoryParts), and what the sidecar held then. */
  memory: MemoryParts & {
    loaderBytes: number;
    held: { events: number; spansPending: number; exportQueue: number; storeRows: number };
  };
  /** OTLP requests the app sent in the window, and what came back. */
  requests: {
    sent: number;
    spansSent: number;
    ok: number;
    /** Answered with another status than 200, by status. */
    refused: Record<string, number>;
    /** No answer: a connection error or the client's timeout. */
    failed: number;
    errors: string[];
    /** Every request's time to its answer or failure. */
    latency: Latency;
    /**
     * The app's own event-loop delay over the window: a request's time includes it, so past the
     * sidecar's answer times it measures the app.
     */
    appLoopDelay: { p99Ms: number; maxMs: number };
    /** The app process's CPU over the window, in cores. */
    appCores: number;
  };
  /**
   * This process's event-loop delay over the window: the kernel spans' arrival times and the
   * explain_trace latencies are read here and include it.
   */
  benchLoopDelay: { p99Ms: number; maxMs: number };
  /** Over the whole run: app spans the correlator joined, those that had kernel events, the events attached to them. */
  joins: {
    spans: number | undefined;
    withEvents: number | undefined;
    /** Joined while events of their time were shed: marked so. */
    shed: number | undefined;
    eventsAttached: number | undefined;
  };
  /** The first span of each request in the window: its send to its first kernel span's arrival. */
  kernelSpans: { sampled: number; arrived: number; latency: Latency; receivedInAll: number };
  mcp: { errors: number; errorSamples: string[]; latency: Latency };
}

/**
 * Before the window: the workloads and the app start, the sidecar begins to follow them. The
 * workloads run this long and the window's length, and end on their own with their truth (a
 * signalled one prints none), which ends the window.
 */
const LEAD_MS = 5_000;
/** Past the workloads' end, the longest wait for them to exit. */
const EXIT_TIMEOUT_MS = 15_000;
const RSS_EVERY_MS = 250;
/** The app's OTLP client gives up on a request after this (the OpenTelemetry SDKs' default). */
const REQUEST_TIMEOUT_MS = 10_000;
/** Each app span lasts this long and ends as it is sent: a few kernel events fall in it. */
const SPAN_NS = 100_000n;
/**
 * explain_trace asks about traces sent at least EXPLAIN_AFTER_MS ago and at most
 * EXPLAIN_WITHIN_MS: the store holds the last 100,000 spans by default, 10 s of the load's spans,
 * and a trace it no longer holds is answered only after a wait for the rows it has yet to write.
 */
const EXPLAIN_AFTER_MS = 2_000;
const EXPLAIN_WITHIN_MS = 5_000;
/** Between explain_trace calls: an agent asking, not a load of its own. */
const MCP_PAUSE_MS = 100;
/** After the window, the longest wait for the sidecar to join and export what it holds. */
const DRAIN_TIMEOUT_MS = 30_000;
const SCRAPE_TIMEOUT_MS = 30_000;
/** Then the longest wait for the collector to pass on the kernel spans the sidecar exported. */
const COLLECTOR_DRAIN_TIMEOUT_MS = 15_000;
/** The longest wait for the sidecar, then its loader, to exit (then the sidecar is killed). */
const STOP_TIMEOUT_MS = 30_000;
/** A sleep-paced load generator wakes this often (the fixtures' --burst-ms). */
const BURST_MS = '1';

const CLOCK_TICKS_PER_S = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** utime + stime of a process, in seconds; undefined once it is gone. */
function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
    // The fields after the command's closing parenthesis start at the 3rd (state): utime is the 14th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
  } catch {
    return undefined;
  }
}

function rssBytes(pid: number): number {
  try {
    return Number(/^VmRSS:\s*(\d+) kB$/m.exec(readFileSync(`/proc/${String(pid)}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    return 0; // gone: a loader between restarts
  }
}

const latency = (ms: number[]): Latency => {
  const sorted = [...ms].sort((a, b) => a - b);
  return { count: sorted.length, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99) };
};

const loopDelay = (histogram: { percentile: (p: number) => number; max: number }) => ({
  p99Ms: histogram.percentile(99) / 1e6,
  maxMs: histogram.max / 1e6,
});

/** Milliseconds since the Unix epoch, below the millisecond: the app process reads the same clock. */
const epochMs = () => performance.timeOrigin + performance.now();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A node process's RSS by part: what is mapped from files (the node binary, DuckDB's library),
 * the main thread's JavaScript heap, the store worker's, the OTLP servers' thread's, DuckDB's own
 * accounting, memory outside the main heap held by its objects, and the rest of the anonymous
 * memory (the allocator's arenas and free lists, thread stacks, other native memory), from
 * /proc/PID/smaps_rollup and the sidecar's gauges. The heaps are as allocated, garbage included.
 */
export interface MemoryParts {
  rssBytes: number;
  fileBytes: number;
  mainHeapBytes: number;
  workerHeapBytes: number;
  serversHeapBytes: number;
  mcpHeapBytes: number;
  duckdbBytes: number;
  externalBytes: number;
  otherBytes: number;
}

function memoryParts(pid: number, metrics: string): MemoryParts {
  const rollup = readFileSync(`/proc/${String(pid)}/smaps_rollup`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s*(\\d+) kB$`, 'm').exec(rollup)?.[1] ?? NaN) * 1024;
  const gauge = (name: string) => metricValue(metrics, name) ?? 0;
  const parts = {
    rssBytes: kb('Rss'),
    fileBytes: kb('Rss') - kb('Anonymous'),
    mainHeapBytes: gauge('causeway_heap_total_bytes'),
    workerHeapBytes: gauge('causeway_store_worker_heap_bytes'),
    serversHeapBytes: gauge('causeway_receiver_heap_bytes'),
    mcpHeapBytes: gauge('causeway_mcp_heap_bytes'),
    duckdbBytes: gauge('causeway_store_memory_bytes'),
    externalBytes: gauge('causeway_external_memory_bytes'),
  };
  const accounted =
    parts.mainHeapBytes +
    parts.workerHeapBytes +
    parts.serversHeapBytes +
    parts.mcpHeapBytes +
    parts.duckdbBytes +
    parts.externalBytes;
  return { ...parts, otherBytes: kb('Anonymous') - accounted };
}

/** Per kind, a metric's samples. */
function perKindOf(text: string, name: string): Record<string, number> {
  const byKind: Record<string, number> = {};
  for (const match of text.matchAll(new RegExp(`^${name}\\{[^}]*kind="([^"]+)"[^}]*\\} (\\S+)$`, 'gm')))
    byKind[match[1] ?? '?'] = (byKind[match[1] ?? '?'] ?? 0) + Number(match[2]);
  return byKind;
}

export async function sidecarLoad(options: LoadOptions): Promise<LoadReport> {
  const { log } = options;
  const dir = mkdtempSync(join(tmpdir(), 'causeway-load-'));
  const timeline = `/dev/shm/causeway-load-${String(process.pid)}`;
  const stops: (() => unknown)[] = [];
  try {
    // The first kernel span of each sampled trace, as the collector delivers it.
    const sentAt = new Map<string, number>();
    const arrivedAt = new Map<string, number>();
    let receivedInAll = 0;
    const receiver = await startOtlpReceiver({
      grpc: { host: '127.0.0.1', port: 0 },
      http: false,
      onSpans: (spans) => {
        const now = epochMs();
        receivedInAll += spans.length;
        for (const span of spans)
          if (sentAt.has(span.traceId) && !arrivedAt.has(span.traceId)) arrivedAt.set(span.traceId, now);
      },
    });
    stops.push(() => receiver.close());
    // The sidecar listens before the collector starts (as test/e2e/pipeline.ts), exports to its kernel receiver.
    const kernelGrpc = `127.0.0.1:${String(await freePort())}`;
    // The workloads are followed from their start, by name, as a user names a known workload:
    // an overloaded sidecar would take the app's spans, which also make it follow their
    // processes, too late (the launch storm, a GPU process, is found by itself).
    // Started as installed (bin/causeway), so that its memory settings are the ones measured; the
    // profiler's flags, which NODE_OPTIONS refuses, through the command's CAUSEWAY_NODE.
    const causeway =
      options.profileDir === undefined
        ? [COMMAND]
        : ['env', `CAUSEWAY_NODE=${process.execPath} --cpu-prof --cpu-prof-dir=${options.profileDir}`, COMMAND];
    const sidecar: Sidecar = await startSidecar(
      `http://${kernelGrpc}`,
      '127.0.0.1:0',
      ['--store-path', join(dir, 'store.duckdb'), '--comm', 'switch_pingpong'],
      causeway,
    );
    const loader = await loaderPid(sidecar.pid).catch(async (error: unknown) => {
      await sidecar.stop('SIGKILL');
      throw error;
    });
    stops.push(async () => {
      const code = await sidecar.stop('SIGINT', STOP_TIMEOUT_MS);
      if (code !== 0)
        log(
          `the sidecar exited ${code === null ? 'killed' : String(code)} when stopped; its last words: ${sidecar.log().trim().split('\n').slice(-4).join(' / ')}`,
        );
      // Why it shed what it did: the line that began each episode (README, Reliability).
      for (const line of sidecar.log().split('\n'))
        if (line.includes('are being shed')) log(`the sidecar said: ${line.replace(/^causeway: /, '')}`);
      // The loader detaches its probes as it exits, after the sidecar: the run ends when it is gone.
      await until('the loader to exit', STOP_TIMEOUT_MS, () =>
        existsSync(`/proc/${String(loader)}`) ? undefined : true,
      );
    });
    // The collector's Jaeger exporter is pointed at the receiver above: the kernel spans' pipeline ends here.
    const collector = await startCollector(join(ROOT, 'otel-config', 'collector.yaml'), {
      JAEGER_OTLP_GRPC: `127.0.0.1:${String(receiver.grpcPort)}`,
      CAUSEWAY_OTLP_GRPC: `127.0.0.1:${String(sidecar.grpcPort)}`,
      OTELCOL_KERNEL_GRPC: kernelGrpc,
    });
    stops.push(() => collector.stop());
    /** The sidecar's /metrics, or an error when an overloaded sidecar does not answer in time. */
    const scrape = () => {
      let timer: NodeJS.Timeout | undefined;
      return Promise.race([
        sidecar.metrics(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            reject(new Error(`the sidecar's /metrics did not answer within ${String(SCRAPE_TIMEOUT_MS / 1000)} s`));
          }, SCRAPE_TIMEOUT_MS);
        }),
      ]).finally(() => {
        clearTimeout(timer);
      });
    };
    log(`sidecar pid ${String(sidecar.pid)}, loader pid ${String(loader)}; starting the workloads`);

    const runS = String(LEAD_MS / 1000 + options.seconds);
    const env = { CUDA_SIM_TIMELINE: timeline };
    const workloads: Workload[] = [];
    const pacing = (rate: number) => (rate > 0 ? ['--rate', String(rate), '--burst-ms', BURST_MS] : []);
    for (let i = 0; i < options.pingPongPairs; i++)
      workloads.push(
        startWorkload('switch_pingpong', [...pacing(options.switchesPerS / options.pingPongPairs), '--seconds', runS]),
      );
    if (options.launchesPerS > 0)
      workloads.push(startWorkload('launch_storm', [...pacing(options.launchesPerS), '--seconds', runS], env));
    for (const w of workloads) {
      w.truth.catch(() => undefined); // read at the end of the window
      stops.push(async () => {
        if (w.child.exitCode === null) w.child.kill('SIGKILL');
        await w.truth.catch(() => undefined);
      });
    }
    const allExited = Promise.all(workloads.map((w) => w.truth));

    // The app, in its own process: a request every spansPerRequest / spansPerS seconds, due by
    // the clock, its pid taking turns among the workloads (the sidecar follows the processes spans
    // come from). It streams the first trace of each window request it sent and of each answered
    // 200, with when it was sent.
    const app = fork(fileURLToPath(new URL('load-app.js', import.meta.url)), [], {
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    });
    let appStderr = '';
    app.stderr?.on('data', (chunk: Buffer) => {
      appStderr = (appStderr + chunk.toString()).slice(-4000);
    });
    const appExited = new Promise<never>((_, reject) =>
      app.once('exit', (code, signal) => {
        reject(new Error(`the app exited (${String(code ?? signal)}): ${appStderr}`));
      }),
    );
    appExited.catch(() => undefined);
    stops.push(() => {
      if (app.exitCode === null && app.signalCode === null) app.kill('SIGKILL');
    });
    /** The first trace of each request of the window answered 200, and when it was sent. */
    const accepted: [traceId: string, sentAt: number][] = [];
    let appReport: ((report: AppReport) => void) | undefined;
    app.on('message', (message: AppSent | AppReport) => {
      if ('accepted' in message) {
        for (const [traceId, at] of message.sent) sentAt.set(traceId, at);
        accepted.push(...message.accepted);
      } else appReport?.(message);
    });
    app.send({
      url: `http://127.0.0.1:${String(sidecar.httpPort)}/v1/traces`,
      pids: workloads.map((w) => w.pid),
      spansPerS: options.spansPerS,
      spansPerRequest: options.spansPerRequest,
      spanNs: String(SPAN_NS),
      timeoutMs: REQUEST_TIMEOUT_MS,
    } satisfies AppSettings);
    /** Closes the app's window; its report once its requests in flight have ended. */
    const closeApp = () =>
      Promise.race([
        new Promise<AppReport>((resolve) => {
          appReport = resolve;
          app.send('close');
        }),
        appExited,
      ]);

    await sleep(LEAD_MS);

    // The window.
    const rss: number[] = [];
    const sampler = setInterval(() => rss.push(rssBytes(sidecar.pid) + rssBytes(loader)), RSS_EVERY_MS);
    stops.push(() => {
      clearInterval(sampler);
    });
    const before = { text: await scrape(), node: cpuSeconds(sidecar.pid), loader: cpuSeconds(loader) };
    const windowStart = performance.now();
    const benchLoop = monitorEventLoopDelay({ resolution: 10 });
    benchLoop.enable();
    const window = { open: true };
    app.send('open');
    log(`window of ${String(options.seconds)} s begins`);

    // The agent: explain_trace, one call at a time, on a trace the sidecar accepted at least
    // EXPLAIN_AFTER_MS ago (by then joined, unless the sidecar lags) and still in its store.
    const mcpMs: number[] = [];
    const mcpErrors: string[] = [];
    const client = new Client({ name: 'causeway-bench', version: '1' });
    await client.connect(new StreamableHTTPClientTransport(new URL(sidecar.mcpUrl)));
    stops.push(() => client.close());
    const agent = (async () => {
      while (window.open) {
        const now = epochMs();
        const ready = accepted.filter(([, at]) => at < now - EXPLAIN_AFTER_MS && at >= now - EXPLAIN_WITHIN_MS);
        const traceId = ready[Math.floor(Math.random() * ready.length)]?.[0];
        if (traceId === undefined) {
          await sleep(MCP_PAUSE_MS);
          continue;
        }
        const start = performance.now();
        try {
          const result = await client.callTool({ name: 'explain_trace', arguments: { trace_id: traceId } }, undefined, {
            timeout: REQUEST_TIMEOUT_MS,
          });
          if (result.isError === true) mcpErrors.push(JSON.stringify(result.content).slice(0, 200));
        } catch (error) {
          mcpErrors.push(String(error));
        }
        mcpMs.push(performance.now() - start);
        await sleep(MCP_PAUSE_MS);
      }
    })();

    const progress = setInterval(() => {
      void scrape().then(
        (text) => {
          const elapsed = (performance.now() - windowStart) / 1000;
          const events =
            (metricValue(text, 'causeway_kernel_events_covered_total') ?? 0) -
            (metricValue(before.text, 'causeway_kernel_events_covered_total') ?? 0);
          log(
            `${elapsed.toFixed(0)} s: ${Math.round(events / elapsed).toLocaleString('en-US')} kernel events/s decoded, ${String(accepted.length)} of ${String(sentAt.size)} OTLP requests answered 200 (as the app streams them), ${String(mcpMs.length)} explain_trace calls, RSS ${((rss.at(-1) ?? 0) / 2 ** 20).toFixed(0)} MiB, the event watermark ${(metricValue(text, 'causeway_correlator_watermark_age_seconds') ?? NaN).toFixed(2)} s behind, ${String(metricValue(text, 'causeway_correlator_spans_pending') ?? 0)} spans waiting for it`,
          );
        },
        () => undefined,
      );
    }, 10_000);
    stops.push(() => {
      clearInterval(progress);
    });
    let overdue: NodeJS.Timeout | undefined;
    const truths = await Promise.race([
      allExited,
      new Promise<never>((_, reject) => {
        overdue = setTimeout(
          () => {
            reject(new Error(`the workloads had not ended ${String(EXIT_TIMEOUT_MS / 1000)} s after the window`));
          },
          options.seconds * 1000 + EXIT_TIMEOUT_MS,
        );
      }),
    ]).finally(() => {
      clearTimeout(overdue);
    });

    window.open = false;
    // The app answers once its window's requests in flight have ended (up to their timeout):
    // the window's CPU and counters are read now, its report after.
    const appReported = closeApp();
    appReported.catch(() => undefined);
    benchLoop.disable();
    const after = { text: await scrape(), node: cpuSeconds(sidecar.pid), loader: cpuSeconds(loader) };
    const windowS = (performance.now() - windowStart) / 1000;
    const memory = {
      ...memoryParts(sidecar.pid, after.text),
      loaderBytes: rssBytes(loader),
      held: {
        events: metricValue(after.text, 'causeway_correlator_events_held') ?? 0,
        spansPending: metricValue(after.text, 'causeway_correlator_spans_pending') ?? 0,
        exportQueue: metricValue(after.text, 'causeway_export_queue_spans') ?? 0,
        storeRows: metricValue(after.text, 'causeway_store_rows_buffered') ?? 0,
      },
    };
    clearInterval(sampler);
    clearInterval(progress);
    log('window over; waiting for the sidecar to export what it holds');
    await agent;
    const requests = await appReported;
    await until('the sidecar to drain', DRAIN_TIMEOUT_MS, async () => {
      const text = await scrape();
      return (metricValue(text, 'causeway_export_queue_spans') ?? 0) === 0 &&
        (metricValue(text, 'causeway_correlator_spans_pending') ?? 0) === 0
        ? true
        : undefined;
    }).catch(() => {
      log(`the sidecar still held spans ${String(DRAIN_TIMEOUT_MS / 1000)} s after the window`);
    });
    // The collector's batch (200 ms) and its export, retried with backoff when its first attempt
    // fails on a busy machine: wait until what the sidecar says it exported has come out of it.
    const exported = metricValue(await scrape(), 'causeway_export_spans_sent_total') ?? 0;
    await until('the kernel spans out of the collector', COLLECTOR_DRAIN_TIMEOUT_MS, () =>
      receivedInAll >= exported ? true : undefined,
    ).catch(() => {
      log(`${String(receivedInAll)} of ${String(exported)} kernel spans came out of the collector in time`);
    });
    const final = await scrape();

    if (after.node === undefined || before.node === undefined) throw new Error('the sidecar exited during the window');
    const loaderS = after.loader === undefined || before.loader === undefined ? NaN : after.loader - before.loader;
    const sidecarS = after.node - before.node + loaderS;
    const events =
      (metricValue(after.text, 'causeway_kernel_events_covered_total') ?? 0) -
      (metricValue(before.text, 'causeway_kernel_events_covered_total') ?? 0);
    const byKind = perKindOf(after.text, 'causeway_kernel_events_covered_total');
    for (const [kind, n] of Object.entries(perKindOf(before.text, 'causeway_kernel_events_covered_total')))
      byKind[kind] = (byKind[kind] ?? 0) - n;
    // Each workload's rate over its whole run: the lead and the window, steady throughout.
    const runSeconds =
      (Math.max(...truths.map((t) => Number(t.end_ns))) - Math.min(...truths.map((t) => Number(t.start_ns)))) / 1e9;
    const rate = (program: string, field: string) =>
      truths.reduce((sum, truth) => (truth.program === program ? sum + Number(truth[field]) : sum), 0);
    const counted = (text: string) =>
      (metricValue(text, 'causeway_kernel_events_covered_total') ?? 0) +
      (metricValue(text, 'causeway_kernel_drops_total') ?? 0) +
      (metricValue(text, 'causeway_kernel_shed_total') ?? 0) +
      (metricValue(text, 'causeway_kernel_shed_late_total') ?? 0);
    const offered = {
      switchesPerS: rate('switch_pingpong', 'switches_per_s'),
      launchesPerS: rate('launch_storm', 'launches_per_s'),
      // Over the whole run, read once the sidecar has taken in what the kernel counted (drops
      // come in the loader's statistics, which an overloaded sidecar reads late).
      events: counted(final),
      eventsPerS: counted(final) / runSeconds,
    };
    const sampled = [...sentAt.entries()];
    return {
      windowS,
      offered,
      delivered: { events, perS: events / windowS, byKind },
      lost: {
        ringBufferDrops: metricValue(final, 'causeway_kernel_drops_total'),
        ringBufferDropsByKind: perKindOf(final, 'causeway_kernel_drops_total'),
        kernelShed: metricValue(final, 'causeway_kernel_shed_total'),
        kernelShedLate: metricValue(final, 'causeway_kernel_shed_late_total'),
        evictedOverBound: metricValue(final, 'causeway_correlator_events_evicted_over_bound_total'),
        storeRowsShed: metricValue(final, 'causeway_store_rows_shed_total'),
        storeEventsStored: metricValue(final, 'causeway_store_events_stored_total'),
        storeSpansStored: metricValue(final, 'causeway_store_spans_stored_total'),
        receiverRequestsRefused: metricValue(final, 'causeway_receiver_requests_refused_total'),
        correlatorSpansRefused: metricValue(final, 'causeway_correlator_spans_refused_total'),
        exportSpansDropped: metricValue(final, 'causeway_export_spans_dropped_total'),
        lostInLoaderGaps: metricValue(final, 'causeway_kernel_events_lost_in_gaps_total'),
        loaderRestarts: metricValue(final, 'causeway_loader_restarts_total'),
      },
      cpu: {
        sidecarS,
        loaderS,
        cores: sidecarS / windowS,
        eventsPerCpuS: events / sidecarS,
      },
      rss: { peakBytes: Math.max(0, ...rss), finalBytes: rss.at(-1) ?? 0 },
      memory,
      requests: {
        sent: requests.sent,
        spansSent: requests.sent * options.spansPerRequest,
        ok: requests.ok,
        refused: requests.refused,
        failed: requests.failed,
        errors: requests.errors,
        latency: latency(requests.ms),
        appLoopDelay: requests.loopDelay,
        appCores: requests.cpuS / requests.windowS,
      },
      benchLoopDelay: loopDelay(benchLoop),
      joins: {
        spans: metricValue(final, 'causeway_correlator_spans_joined_total'),
        withEvents: metricValue(final, 'causeway_correlator_spans_with_events_total'),
        shed: metricValue(final, 'causeway_correlator_spans_shed_total'),
        eventsAttached: metricValue(final, 'causeway_correlator_events_attached_total'),
      },
      kernelSpans: {
        sampled: sampled.length,
        arrived: sampled.filter(([id]) => arrivedAt.has(id)).length,
        latency: latency(
          sampled.flatMap(([id, sent]) => {
            const arrived = arrivedAt.get(id);
            return arrived === undefined ? [] : [arrived - sent];
          }),
        ),
        receivedInAll,
      },
      mcp: { errors: mcpErrors.length, errorSamples: mcpErrors.slice(0, 3), latency: latency(mcpMs) },
    };
  } finally {
    // Last started, first stopped; each even when another fails.
    for (const stop of stops.reverse())
      try {
        await stop();
      } catch (error) {
        log(`while stopping: ${String(error)}`);
      }
    rmSync(dir, { recursive: true, force: true });
    rmSync(timeline, { force: true });
  }
}

/** One line of the table against issue 11's targets; met undefined: nothing to compare (n/a). */
export interface TargetCheck {
  target: string;
  measured: string;
  met: boolean | undefined;
}

const n = (value: number) => Math.round(value).toLocaleString('en-US');
const orNa = (value: number | undefined) => (value === undefined ? 'n/a' : n(value));
const ms = (l: Latency) =>
  l.count === 0 ? 'none' : `p50 ${l.p50Ms.toFixed(1)} ms, p99 ${l.p99Ms.toFixed(1)} ms over ${n(l.count)}`;
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(0)} MB`;
const zero = (value: number | undefined) => (value === undefined ? undefined : value === 0);

/** The rows of the measure table for one run, `title` naming it. */
export function loadRows(title: string, r: LoadReport): string[] {
  const perKind = (counts: Record<string, number>, per: number) =>
    Object.entries(counts)
      .filter(([, count]) => count > 0)
      .map(([kind, count]) => `${kind} ${n(count / per)}`)
      .join(', ');
  const kinds = perKind(r.delivered.byKind, r.windowS);
  const drops = perKind(r.lost.ringBufferDropsByKind, 1);
  const refused = Object.entries(r.requests.refused).map(([status, count]) => `${n(count)} answered ${status}`);
  const l = r.lost;
  const benchLoop = `the bench's event-loop delay meanwhile (included) p99 ${r.benchLoopDelay.p99Ms.toFixed(0)} ms, max ${r.benchLoopDelay.maxMs.toFixed(0)} ms`;
  return [
    `| ${title}: kernel events offered | ${n(r.offered.eventsPerS)}/s over the workloads' run (decoded, dropped or shed; they made ${n(r.offered.switchesPerS)} switches/s and ${n(r.offered.launchesPerS)} launches/s); decoded in the ${r.windowS.toFixed(0)} s window ${n(r.delivered.perS)}/s: ${kinds || 'none'} |`,
    `| ${title}: lost, over the whole run | ring-buffer drops ${orNa(l.ringBufferDrops)}${drops === '' ? '' : ` (${drops})`}; kernel events shed ${orNa(l.kernelShed)}, and ${orNa(l.kernelShedLate)} more read too late to join; held kernel events evicted over --max-events ${orNa(l.evictedOverBound)}; store rows shed ${orNa(l.storeRowsShed)} (stored ${orNa(l.storeEventsStored)} kernel events, ${orNa(l.storeSpansStored)} app spans); receiver refused ${orNa(l.receiverRequestsRefused)} requests; correlator refused ${orNa(l.correlatorSpansRefused)} spans; kernel spans dropped by the exporter ${orNa(l.exportSpansDropped)}; lost in loader gaps ${orNa(l.lostInLoaderGaps)} (${orNa(l.loaderRestarts)} loader restarts) |`,
    `| ${title}: sidecar CPU and memory | ${r.cpu.cores.toFixed(2)} cores (node ${((r.cpu.sidecarS - r.cpu.loaderS) / r.windowS).toFixed(2)}, loader ${(r.cpu.loaderS / r.windowS).toFixed(2)}); ${n(r.cpu.eventsPerCpuS)} kernel events decoded per CPU-second; RSS (node + loader) peak ${mb(r.rss.peakBytes)}, at the end ${mb(r.rss.finalBytes)} |`,
    `| ${title}: node's RSS at the end of the window, by part | ${mb(r.memory.rssBytes)}: mapped from files (node, DuckDB's library) ${mb(r.memory.fileBytes)}, main JavaScript heap ${mb(r.memory.mainHeapBytes)}, store worker's heap ${mb(r.memory.workerHeapBytes)}, OTLP servers' heap ${mb(r.memory.serversHeapBytes)}, MCP server's heap ${mb(r.memory.mcpHeapBytes)}, DuckDB ${mb(r.memory.duckdbBytes)}, outside the main heap (buffers) ${mb(r.memory.externalBytes)}, the rest (allocator arenas, stacks, other native) ${mb(r.memory.otherBytes)}; loader ${mb(r.memory.loaderBytes)}. Held then: ${n(r.memory.held.events)} kernel events, ${n(r.memory.held.spansPending)} spans waiting to be joined, ${n(r.memory.held.exportQueue)} kernel spans queued for export, ${n(r.memory.held.storeRows)} store rows buffered |`,
    `| ${title}: OTLP/HTTP requests as the app sees them | ${n(r.requests.sent)} sent: ${n(r.requests.ok)} answered 200${refused.length > 0 ? `, ${refused.join(', ')}` : ''}, ${n(r.requests.failed)} without an answer${r.requests.errors.length > 0 ? ` (${r.requests.errors.slice(0, 3).join('; ')})` : ''}; ${ms(r.requests.latency)}; the app (a process of its own) used ${r.requests.appCores.toFixed(2)} cores, its event-loop delay p99 ${r.requests.appLoopDelay.p99Ms.toFixed(0)} ms, max ${r.requests.appLoopDelay.maxMs.toFixed(0)} ms |`,
    `| ${title}: app spans joined, over the whole run | ${orNa(r.joins.spans)} joined, ${orNa(r.joins.withEvents)} with kernel events, ${orNa(r.joins.shed)} marked as missing events shed, ${orNa(r.joins.eventsAttached)} events attached to them |`,
    `| ${title}: a span's send to its first kernel span out of the collector | ${n(r.kernelSpans.arrived)} of ${n(r.kernelSpans.sampled)} sampled spans (a request's first) got kernel spans: ${ms(r.kernelSpans.latency)}; ${n(r.kernelSpans.receivedInAll)} kernel spans received in all; ${benchLoop} |`,
    `| ${title}: \`explain_trace\` through an MCP client over HTTP, one call at a time, on traces sent ${String(EXPLAIN_AFTER_MS / 1000)} to ${String(EXPLAIN_WITHIN_MS / 1000)} s before | ${ms(r.mcp.latency)} calls, ${n(r.mcp.errors)} errors${r.mcp.errorSamples.length > 0 ? ` (${r.mcp.errorSamples.join('; ')})` : ''}; ${benchLoop} |`,
  ];
}

/** The load run's lines of the targets table. */
export function loadTargets(r: LoadReport, asked: { eventsPerS: number; spansPerS: number }): TargetCheck[] {
  const l = r.lost;
  const refused =
    l.receiverRequestsRefused === undefined
      ? undefined
      : l.receiverRequestsRefused +
        (l.correlatorSpansRefused ?? 0) +
        Object.values(r.requests.refused).reduce((a, b) => a + b, 0);
  return [
    {
      target: `kernel events offered: ${n(asked.eventsPerS)}/s for ${String(Math.round(r.windowS))} s (or the most two cores make next to the sidecar)`,
      measured: `${n(r.offered.eventsPerS)}/s`,
      met: r.offered.eventsPerS >= 0.95 * asked.eventsPerS,
    },
    {
      target: `app spans: ${n(asked.spansPerS)}/s over OTLP/HTTP`,
      measured: `${n(r.requests.spansSent / r.windowS)}/s sent`,
      met: r.requests.spansSent >= 0.95 * asked.spansPerS * r.windowS,
    },
    { target: 'ring-buffer drops: 0', measured: orNa(l.ringBufferDrops), met: zero(l.ringBufferDrops) },
    { target: 'store sheds: 0', measured: orNa(l.storeRowsShed), met: zero(l.storeRowsShed) },
    {
      target: 'receiver refusals: 0 (requests refused, spans refused, non-200 answers)',
      measured: orNa(refused),
      met: zero(refused),
    },
    {
      target: 'sidecar CPU (node + loader): at most 1 core',
      measured: `${r.cpu.cores.toFixed(2)} cores`,
      met: r.cpu.cores <= 1,
    },
    {
      target: 'kernel events per sidecar CPU-second, end to end: at least 300k',
      measured: n(r.cpu.eventsPerCpuS),
      met: r.cpu.eventsPerCpuS >= 300_000,
    },
    {
      target: 'sidecar RSS (node + loader): at most 300 MB',
      measured: `peak ${mb(r.rss.peakBytes)}`,
      met: r.rss.peakBytes <= 300e6,
    },
    {
      target: 'span arrival to kernel spans exported: p99 at most 1 s',
      measured:
        r.kernelSpans.latency.count === 0
          ? `none of ${n(r.kernelSpans.sampled)} sampled spans got kernel spans`
          : `p99 ${(r.kernelSpans.latency.p99Ms / 1000).toFixed(2)} s`,
      met: r.kernelSpans.latency.count === 0 ? undefined : r.kernelSpans.latency.p99Ms <= 1000,
    },
    {
      target: 'OTLP request latency under the load: p99 at most 100 ms',
      measured: `p99 ${r.requests.latency.p99Ms.toFixed(1)} ms`,
      met: r.requests.latency.p99Ms <= 100,
    },
    {
      target: '`explain_trace` while the load runs: measured (no target)',
      measured: `p99 ${r.mcp.latency.p99Ms.toFixed(1)} ms`,
      met: undefined,
    },
  ];
}

/** The flood run's line of the targets table. */
export function floodTargets(r: LoadReport): TargetCheck[] {
  return [
    {
      target: 'OTLP request latency under a flood (unthrottled ping-pong): p99 at most 100 ms',
      measured: `p99 ${r.requests.latency.p99Ms.toFixed(1)} ms (${n(r.requests.failed)} unanswered)`,
      met: r.requests.latency.p99Ms <= 100 && r.requests.failed === 0,
    },
  ];
}

export function targetTable(checks: TargetCheck[]): string[] {
  return [
    '| target (issue 11) | measured | met |',
    '| --- | --- | --- |',
    ...checks.map(
      (c) => `| ${c.target} | ${c.measured} | ${c.met === undefined ? 'n/a' : c.met ? 'met' : 'not met'} |`,
    ),
  ];
}
