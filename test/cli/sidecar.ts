// `causeway run` started as a user would, on free ports, for the tests that need the sidecar.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../bpf/session.js';

export interface Sidecar {
  grpcPort: number;
  metricsPort: number;
  /** The MCP endpoint, http://127.0.0.1:PORT/mcp. */
  mcpUrl: string;
  log: () => string;
  metrics: () => Promise<string>;
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

/** Starts the sidecar exporting to `exportUrl`, and waits until it listens. `args` are more `run` options. */
export async function startSidecar(exportUrl: string, grpc = '127.0.0.1:0', args: string[] = []): Promise<Sidecar> {
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'dist', 'src', 'cli', 'main.js'),
      'run',
      '--otlp-grpc',
      grpc,
      '--otlp-http',
      '127.0.0.1:0',
      '--metrics',
      '127.0.0.1:0',
      '--mcp',
      '127.0.0.1:0',
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
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const [, grpcPort, metricsPort, mcpUrl] = await until('the sidecar to listen', 15_000, () => {
    if (child.exitCode !== null) throw new Error(`causeway run exited: ${log}`);
    return (
      /receiving OTLP on [^ ]+:(\d+) \(gRPC\).*metrics on [^ ]+:(\d+)\/metrics, MCP on (\S+\/mcp)/.exec(log) ??
      undefined
    );
  });
  return {
    grpcPort: Number(grpcPort),
    metricsPort: Number(metricsPort),
    mcpUrl: String(mcpUrl),
    log: () => log,
    metrics: async () => (await fetch(`http://127.0.0.1:${String(metricsPort)}/metrics`)).text(),
    stop: async (signal = 'SIGINT', killAfterMs) => {
      if (child.exitCode === null) child.kill(signal);
      const kill = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      const code = await exited;
      clearTimeout(kill);
      return code;
    },
  };
}
