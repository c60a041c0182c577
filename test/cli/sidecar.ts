// `causeway run` started as a user would, on free ports, for the tests that need the sidecar.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { get } from 'node:http';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { SidecarStatus } from '../../src/sidecar/status.js';
import { startOtlpReceiver } from '../../src/otlp/index.js';
import { COMMAND, childrenOf } from '../bpf/session.js';

export interface Sidecar {
  pid: number;
  grpcPort: number;
  httpPort: number;
  metricsPort: number;
  /** The MCP endpoint, http://127.0.0.1:PORT/mcp. */
  mcpUrl: string;
  log: () => string;
  metrics: () => Promise<string>;
  /**
   * Posts `count` spans of process `pid` (on its thread `tid`, if given), each `durationNs` long
   * (default 20 ms) and ending now, over OTLP/HTTP (JSON); resolves with the HTTP status, their
   * trace ids and their end (Unix ns).
   */
  postSpans: (
    pid: number,
    count?: number,
    durationNs?: bigint,
    tid?: number,
  ) => Promise<{ status: number; traceIds: string[]; endUnixNano: bigint }>;
  /**
   * Stops it with `signal` (SIGINT unless given); resolves with the exit code, or null when it
   * had not exited after killAfterMs and was killed, as Kubernetes does at the grace period.
   */
  stop: (signal?: NodeJS.Signals, killAfterMs?: number) => Promise<number | null>;
}

export async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => T | undefined | Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Starts the sidecar with `args`, exporting to an OTLP receiver of the test's own that keeps
 * nothing (for tests that watch the sidecar, not its output); both stopped after the test.
 */
export async function startSidecarExportingNowhere(t: TestContext, args: string[] = []): Promise<Sidecar> {
  const sink = await startOtlpReceiver({ grpc: { host: '127.0.0.1', port: 0 }, http: false, onSpans: () => {} });
  t.after(() => sink.close());
  const sidecar = await startSidecar(`http://127.0.0.1:${String(sink.grpcPort)}`, '127.0.0.1:0', args);
  t.after(() => sidecar.stop());
  return sidecar;
}

/**
 * Spawns the sidecar exporting to `exportUrl`, on free ports, without waiting for it: its process,
 * its log so far (`note` adds the harness's own lines), and its exit code (null when a signal
 * ended it, which the log then says). `args`
 * are more `run` options; the store is in memory unless they give a --store-path. `causeway` is
 * the command that runs the CLI: this checkout's bin/causeway by default, as installed.
 */
export function spawnSidecar(
  exportUrl: string,
  grpc = '127.0.0.1:0',
  args: string[] = [],
  causeway: string[] = [COMMAND],
): { child: ChildProcess; log: () => string; note: (line: string) => void; exited: Promise<number | null> } {
  const [command, ...rest] = causeway as [string, ...string[]];
  const child = spawn(
    command,
    [
      ...rest,
      'run',
      '--otlp-grpc',
      grpc,
      '--otlp-http',
      '127.0.0.1:0',
      '--metrics',
      '127.0.0.1:0',
      '--mcp',
      '127.0.0.1:0',
      ...(args.includes('--store-path') ? [] : ['--store-path', ':memory:']),
      ...args,
    ],
    {
      env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: exportUrl },
    },
  );
  let log = '';
  child.stderr.on('data', (chunk: Buffer) => {
    log += chunk.toString();
  });
  // A sidecar that a signal ended says which in its log, so that an assertion on its exit names it.
  const exited = new Promise<number | null>((resolve) =>
    child.on('close', (code, signal) => {
      if (signal !== null) log += `[test harness] causeway run ended by ${signal}\n`;
      resolve(code);
    }),
  );
  return {
    child,
    log: () => log,
    note: (line) => {
      log += `[test harness] ${line}\n`;
    },
    exited,
  };
}

/** The sidecar spawned (spawnSidecar), once it listens. */
export async function startSidecar(
  exportUrl: string,
  grpc = '127.0.0.1:0',
  args: string[] = [],
  causeway: string[] = [COMMAND],
): Promise<Sidecar> {
  const { child, log, note, exited } = spawnSidecar(exportUrl, grpc, args, causeway);
  const [, grpcPort, httpPort, metricsPort, mcpUrl] = await until('the sidecar to listen', 15_000, () => {
    if (child.exitCode !== null) throw new Error(`causeway run exited: ${log()}`);
    return (
      /receiving OTLP on [^ ]+:(\d+) \(gRPC\) and [^ ]+:(\d+) \(HTTP\).*metrics on [^ ]+:(\d+)\/metrics, MCP on (\S+\/mcp)/.exec(
        log(),
      ) ?? undefined
    );
  });
  return {
    pid: child.pid ?? 0,
    grpcPort: Number(grpcPort),
    httpPort: Number(httpPort),
    metricsPort: Number(metricsPort),
    mcpUrl: String(mcpUrl),
    log,
    // A connection per scrape: one kept alive can be closed by the server (5 s idle) just as it is reused.
    metrics: () =>
      new Promise<string>((resolve, reject) => {
        get({ host: '127.0.0.1', port: Number(metricsPort), path: '/metrics', agent: false }, (response) => {
          let body = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (body += chunk));
          response.on('end', () => {
            resolve(body);
          });
        }).on('error', reject);
      }),
    postSpans: async (pid, count = 1, durationNs = 20_000_000n, tid) => {
      const end = BigInt(Date.now()) * 1_000_000n;
      const spans = Array.from({ length: count }, () => ({
        traceId: randomBytes(16).toString('hex'),
        spanId: randomBytes(8).toString('hex'),
        name: 'GET /work',
        kind: 2,
        startTimeUnixNano: String(end - durationNs),
        endTimeUnixNano: String(end),
        attributes: tid === undefined ? [] : [{ key: 'causeway.thread.tid', value: { intValue: String(tid) } }],
      }));
      const resource = {
        attributes: [
          { key: 'service.name', value: { stringValue: 'worker' } },
          { key: 'process.pid', value: { intValue: String(pid) } },
        ],
      };
      const response = await fetch(`http://127.0.0.1:${String(httpPort)}/v1/traces`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ resourceSpans: [{ resource, scopeSpans: [{ spans }] }] }),
      });
      await response.arrayBuffer();
      return { status: response.status, traceIds: spans.map((span) => span.traceId), endUnixNano: end };
    },
    stop: async (signal = 'SIGINT', killAfterMs) => {
      if (child.exitCode === null) child.kill(signal);
      const kill =
        killAfterMs === undefined
          ? undefined
          : setTimeout(() => {
              note(`still running ${String(killAfterMs)} ms after ${signal}: SIGKILL`);
              child.kill('SIGKILL');
            }, killAfterMs);
      const code = await exited;
      clearTimeout(kill);
      return code;
    },
  };
}

/**
 * A metric's value in Prometheus text, summed over its label sets; undefined when the text has
 * no sample of it (a metric this version of the sidecar does not have).
 */
export function metricValue(text: string, name: string): number | undefined {
  let sum: number | undefined;
  for (const match of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm')))
    sum = (sum ?? 0) + Number(match[1]);
  return sum;
}

/**
 * The loader of a sidecar or a capture (`parentPid`): its one child process, waited for until it
 * runs as causeway-loader (a child just spawned may not have exec'd yet).
 */
export async function loaderPid(parentPid: number): Promise<number> {
  return until('the loader', 10_000, () => {
    const children = childrenOf(parentPid);
    assert.ok(children.length <= 1, `${String(parentPid)} runs more than one child: ${children.join(' ')}`);
    const [child] = children;
    return child !== undefined && commOf(child) === 'causeway-loader' ? child : undefined;
  });
}

/** A process's name; '' once it has exited. */
function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${String(pid)}/comm`, 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw error;
  }
}

/** The sidecar's `status` tool through a real MCP client, closed after the test. */
export async function statusTool(
  t: TestContext,
  sidecar: Sidecar,
  name: string,
): Promise<() => Promise<SidecarStatus>> {
  const mcp = new Client({ name, version: '1' });
  await mcp.connect(new StreamableHTTPClientTransport(new URL(sidecar.mcpUrl)));
  t.after(() => mcp.close());
  return async () => {
    const result = await mcp.callTool({ name: 'status', arguments: {} });
    assert.notEqual(result.isError, true);
    return result.structuredContent as SidecarStatus;
  };
}
