// `npm run bench -- --only node-thread-ctx`: what the Node thread-context writer
// (src/otlp/node/thread-ctx.ts) costs the event loop of an HTTP server traced by sdk-node with its
// HTTP instrumentation (node_http_server.mjs). One server swaps its context manager between loads
// (the SDK's default, ThreadContextManager, it with continuations; and a control, the SDK's
// default again, whose ratio shows what the rounds tell apart): in each round each runs in
// turn (rotated order) for the round's seconds under a steady load, and the event loop's
// thread CPU (schedstat, ns) per request is taken. A round's ratio is against the run without
// the writer, same round. (Three servers, one per manager, differed by 4% with the same manager.)
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT } from '../bpf/session.js';
import { describeRatio, roundOrder, spread, type Spread } from './rounds.js';

const SERVER = join(ROOT, 'test', 'bench', 'node_http_server.mjs');
const CONFIGURATIONS = ['without', 'control', 'with', 'continuations'] as const;
type Configuration = (typeof CONFIGURATIONS)[number];
/** Sockets to the server: several request spans are open on the loop at once. */
const CONCURRENCY = 16;
/** The load: about a third of what the server answers on one of this machine's cores. */
const REQUESTS_PER_S = 2000;
const TICK_MS = 10;
/** The event-loop CPU the writer may add under an HTTP load (issue 14). */
const TARGET_RATIO = 1.02;

interface Server {
  child: ChildProcess;
  port: number;
  tid: number;
}

async function startServer(): Promise<Server> {
  const child = spawn(process.execPath, [SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const first = await lines.next();
  if (first.done === true) throw new Error('the server exited before it listened');
  const { port, tid } = JSON.parse(first.value) as { port: number; tid: number };
  return { child, port, tid };
}

/** The CPU time a thread ran, in ns (the first field of its schedstat). */
function threadCpuNs(server: Server): number {
  const pid = String(server.child.pid);
  return Number(readFileSync(`/proc/${pid}/task/${String(server.tid)}/schedstat`, 'utf8').split(' ')[0]);
}

function get(server: Server, path: string, agent?: Agent): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    request({ host: '127.0.0.1', port: server.port, path, agent }, (response) => {
      response.resume().on('end', resolve).on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

/**
 * Requests answered by the server for `seconds` of a steady load: REQUESTS_PER_S, sent in a batch
 * every TICK_MS over CONCURRENCY keep-alive sockets. A steady rate, not as fast as it answers:
 * how many requests the loop takes per turn then stays the same from run to run, whatever else
 * runs on the machine, and with it the CPU per request.
 */
async function load(server: Server, seconds: number): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const requests: Promise<void>[] = [];
  const perTick = (REQUESTS_PER_S * TICK_MS) / 1000;
  const began = performance.now();
  for (let tick = 1; tick <= (seconds * 1000) / TICK_MS; tick++) {
    for (let i = 0; i < perTick; i++) requests.push(get(server, '/item', agent));
    await sleep(Math.max(0, began + tick * TICK_MS - performance.now()));
  }
  await Promise.all(requests);
  agent.destroy();
  return requests.length;
}

const verdict = (ratio: Spread) =>
  ratio.high <= TARGET_RATIO ? 'met' : ratio.low > TARGET_RATIO ? 'not met' : 'within noise of it';

export async function nodeThreadContextRows(rounds: number, roundSeconds: number): Promise<string[]> {
  process.stderr.write('bench: Node thread-context writer, HTTP server event-loop CPU\n');
  const server = await startServer();
  try {
    const cpuPerRequest = new Map<Configuration, number[]>(CONFIGURATIONS.map((c) => [c, []]));
    // A warm-up round, not counted: the JIT and the server's first sockets.
    for (const config of CONFIGURATIONS) {
      await get(server, `/configure/${config}`);
      await load(server, 1);
    }
    for (let round = 0; round < rounds; round++) {
      for (const config of roundOrder(CONFIGURATIONS, round)) {
        await get(server, `/configure/${config}`);
        const before = threadCpuNs(server);
        const answered = await load(server, roundSeconds);
        cpuPerRequest.get(config)?.push((threadCpuNs(server) - before) / answered);
      }
    }
    const without = cpuPerRequest.get('without') ?? [];
    const us = (values: number[]) => `${(spread(values).median / 1000).toFixed(1)} µs`;
    const against = (config: Configuration) => {
      const values = cpuPerRequest.get(config) ?? [];
      const ratio = spread(values.map((v, round) => v / (without[round] ?? NaN)));
      return `${us(values)}: ${describeRatio(ratio)}, target ≤ ${TARGET_RATIO.toFixed(2)} ${verdict(ratio)}`;
    };
    return [
      `| Node HTTP server (sdk-node, HTTP instrumentation, ${String(REQUESTS_PER_S)} requests/s over ${String(CONCURRENCY)} keep-alive sockets), event-loop CPU per request, median of ${String(rounds)} rotated rounds of ${String(roundSeconds)} s | ${us(without)} without the writer; with ThreadContextManager ${against('with')}; with { continuations: true } ${against('continuations')}; control (the SDK's manager again) ${describeRatio(spread((cpuPerRequest.get('control') ?? []).map((v, round) => v / (without[round] ?? NaN))))} |`,
    ];
  } finally {
    server.child.kill();
  }
}
