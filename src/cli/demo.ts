// `causeway demo`: the main job on one machine, without a GPU. Workloads on the simulated
// CUDA runtime (test/fixtures) make a GPU stall, contention from a second GPU user and a lock
// held across a GPU wait; the real probes capture them and the events print as a table. Then
// the whole pipeline: a Python service on the OpenTelemetry SDK sends its spans to the sidecar
// (`causeway run`), and an MCP client asks explain_trace why its request was slow.
import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { KernelCapture, captureParts } from '../kernel/capture.js';
import type { LoaderMessage } from '../kernel/loader.js';
import { ProcessTable } from '../kernel/processes.js';
import { packageRoot } from '../install.js';
import { TABLE_HEADER, closingSummary, toTableRow } from './capture.js';
import { UsageError } from './usage.js';

export const DEMO_HELP = `Usage: causeway demo

Runs workloads on the simulated GPU (built by \`npm run build\` into test/fixtures/build)
while capturing with the real eBPF probes, and prints what the kernel saw:
  1. gpu_sync waits 200 ms in cudaStreamSynchronize for its kernel, while gpu_hog, a
     second process, keeps the same device busy: the sync takes longer (contention);
  2. mutex_convoy: a waiter blocks on a mutex whose holder is inside a GPU sync;
  3. the sidecar: a Python service (OpenTelemetry SDK, from the venv test/setup.sh makes)
     sends its spans to \`causeway run\`; its request waits on a lock that a worker thread
     holds across cudaStreamSynchronize, and an MCP client asks explain_trace why.
Needs root (see \`causeway doctor\`). Takes about 10 seconds.
`;

const WORKLOADS = join(packageRoot, 'test', 'fixtures', 'build', 'workloads');
const SIM_CUDART = join(packageRoot, 'test', 'fixtures', 'build', 'cudasim', 'libcudart.so.12');

/** Runs a program to its end; resolves with its standard output, rejects unless it exits 0. */
function run(path: string, args: string[], env: Record<string, string>): Promise<string> {
  const child = spawn(path, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${basename(path)} exited with ${String(code)}`));
    });
  });
}

export async function demo(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(DEMO_HELP);
    return 0;
  }
  if (argv.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(argv[0])}`);
  if (!existsSync(SIM_CUDART))
    throw new UsageError(`the simulated GPU is not built (${SIM_CUDART}): run npm run build`);

  const gpu = { CUDA_SIM_TIMELINE: `/dev/shm/causeway-demo-${process.pid}` };
  const onMessage = (message: LoaderMessage) => {
    if (message.level !== 'info') process.stderr.write(`causeway: ${message.level}: ${message.msg}\n`);
  };
  const session = new KernelCapture(
    {
      pids: [],
      comms: ['gpu_sync', 'gpu_hog', 'mutex_convoy'],
      libs: [SIM_CUDART],
      minDurationUs: 1000,
      onMessage,
      onEvents: (batch) => {
        process.stdout.write(batch.events().map(toTableRow).join(''));
      },
    },
    captureParts(new ProcessTable(), onMessage),
  );
  session.start();
  const ready = await Promise.race([session.ready, session.ended]);
  if ('failure' in ready) {
    process.stderr.write(`causeway demo: cannot capture: ${ready.failure ?? 'stopped'}\n`);
    return 1;
  }
  process.stdout.write(
    `Capturing on ${ready.ncpus} CPUs. 1: a GPU sync, while a second process uses the GPU.\n${TABLE_HEADER}`,
  );
  try {
    // The traced programs start their work 100 ms after exec: capture follows them by name from
    // their exec record, and a wait that began before that is not theirs to see.
    await Promise.all([
      run(join(WORKLOADS, 'gpu_hog'), ['--seconds', '1', '--kernel-ms', '100'], gpu),
      run(join(WORKLOADS, 'gpu_sync'), ['--kernel-ms', '200', '--start-delay-ms', '100'], gpu),
    ]);
    process.stdout.write('2: a waiter blocked on a mutex held across cudaStreamSynchronize.\n');
    await run(
      join(WORKLOADS, 'mutex_convoy'),
      ['--hold-ms', '150', '--holder-work', 'gpu', '--start-delay-ms', '100'],
      gpu,
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
  } finally {
    await session.stop();
    rmSync(gpu.CUDA_SIM_TIMELINE, { force: true });
  }
  process.stdout.write(closingSummary(session.counters()));
  return explainOverMcp(gpu);
}

const PYTHON = '/var/cache/causeway/venv/bin/python';
const SCENARIO_APP = join(packageRoot, 'test', 'fixtures', 'apps', 'python_scenario_service.py');

/** Part 3: the sidecar, a traced Python request, and the MCP answer. */
async function explainOverMcp(gpu: Record<string, string>): Promise<number> {
  if (!existsSync(PYTHON)) {
    process.stdout.write(
      `3: skipped: no Python with the OpenTelemetry SDK at ${PYTHON} (bash test/setup.sh makes it).\n`,
    );
    return 0;
  }
  process.stdout.write(
    '3: the sidecar: a traced Python request waits on a lock held across a GPU sync; explain_trace over MCP says why.\n',
  );
  // No collector in the demo: the sidecar's kernel spans go nowhere (it says so on its stderr, kept for errors).
  const sidecar = spawn(
    process.execPath,
    [
      join(packageRoot, 'dist', 'src', 'cli', 'main.js'),
      'run',
      '--otlp-grpc',
      '127.0.0.1:0',
      '--otlp-http',
      '127.0.0.1:0',
      '--metrics',
      '127.0.0.1:0',
      '--mcp',
      '127.0.0.1:0',
      // The demo's store goes with it, leaving a node agent's store alone.
      '--store-path',
      ':memory:',
    ],
    {
      env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let log = '';
  sidecar.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const client = new Client({ name: 'causeway-demo', version: '0.1.0' });
  try {
    const [, grpcPort, mcpUrl] =
      (await waitFor(
        15_000,
        () => /receiving OTLP on [^ ]+:(\d+) \(gRPC\).*MCP on (\S+\/mcp)/.exec(log) ?? undefined,
        () => sidecar.exitCode !== null,
      )) ?? [];
    if (grpcPort === undefined || mcpUrl === undefined) throw new Error(`the sidecar did not start:\n${log}`);
    const truth = await run(PYTHON, [SCENARIO_APP, 'lock-chain', '--libcudart', SIM_CUDART], {
      ...gpu,
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${grpcPort}`,
    });
    const traceId = (JSON.parse(truth) as { trace_id: string }).trace_id;
    await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl)));
    const ask = () => client.callTool({ name: 'explain_trace', arguments: { trace_id: traceId } });
    await waitFor(
      10_000,
      async () => ((await ask()).isError === true ? undefined : true),
      () => false,
    );
    await new Promise((resolve) => setTimeout(resolve, 500)); // the last kernel events reach the store
    const answer = await ask();
    const text = (answer.content as { type: string; text?: string }[]).find((c) => c.type === 'text')?.text ?? '';
    process.stdout.write(`explain_trace ${traceId}:\n${text}\n`);
    return answer.isError === true ? 1 : 0;
  } finally {
    await client.close();
    sidecar.kill('SIGINT');
    await new Promise((resolve) => sidecar.once('close', resolve));
  }
}

/** Polls `probe` every 200 ms until it gives a value, the deadline passes, or `gaveUp` says stop. */
async function waitFor<T>(
  timeoutMs: number,
  probe: () => T | undefined | Promise<T | undefined>,
  gaveUp: () => boolean,
): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !gaveUp()) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return undefined;
}
