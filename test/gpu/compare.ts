// What the real-GPU check (test/gpu/check.sh) captured, against what PyTorch said of the same run:
//   node dist/test/gpu/compare.js OUTDIR
// For each capture in OUTDIR (NAME.bin and NAME.json): the eager phase's kernels, named and
// counted, against PyTorch's profiler; each wait PyTorch timed against the cuda.sync the capture
// holds for it; the graph's replays and the kernels a replay names.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

interface Clock {
  unix_ns: number;
}

interface Wait extends Clock {
  api: string;
  wall_ns: number;
  polls?: number;
}

interface Workload {
  pid: number;
  tid: number;
  torch: string;
  device: string;
  profiler: { kernels?: Record<string, number>; error?: string };
  waits: Wait[];
  graph_replays: Wait[];
  phases: Record<string, { began: Clock; ended: Clock; replays?: number }>;
}

interface CapturedEvent {
  kind: string;
  pid: number;
  tid: number;
  start_unix_nano: string;
  end_unix_nano: string;
  attributes: Record<string, unknown>;
}

const CLI = new URL('../../src/cli/main.js', import.meta.url).pathname;
const ms = (ns: number) => (ns / 1e6).toFixed(3);
const start = (e: CapturedEvent) => Number(e.start_unix_nano);
const end = (e: CapturedEvent) => Number(e.end_unix_nano);

function replay(frames: string): CapturedEvent[] {
  const out = execFileSync(process.execPath, [CLI, 'capture', '--json', '--replay', frames], {
    encoding: 'utf8',
    maxBuffer: 1 << 30,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  return out
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as CapturedEvent);
}

/** Launches per kernel name (the function in hex when unnamed) in [from, to], whole and summed. */
function kernelsLaunched(events: CapturedEvent[], pid: number, from: number, to: number): Map<string, number> {
  const counts = new Map<string, number>();
  const add = (name: string, n: number) => counts.set(name, (counts.get(name) ?? 0) + n);
  for (const e of events) {
    if (e.pid !== pid || start(e) < from || start(e) > to) continue;
    const a = e.attributes;
    if (e.kind === 'cuda.launch' && a['causeway.cuda.api'] !== 'cudaGraphLaunch') {
      add(String(a['causeway.cuda.kernel'] ?? a['causeway.cuda.function']), 1);
    } else if (e.kind === 'cuda.launches') {
      const names = a['causeway.cuda.kernels'] as string[];
      const n = a['causeway.cuda.kernel_counts'] as number[];
      names.forEach((name, i) => add(name, n[i] ?? 0));
    }
  }
  return counts;
}

/** The longest cuda.sync of the thread overlapping what PyTorch timed. */
function syncFor(wait: Wait, syncs: CapturedEvent[]): CapturedEvent | undefined {
  const until = wait.unix_ns + wait.wall_ns;
  return syncs
    .filter((e) => start(e) < until && end(e) > wait.unix_ns)
    .sort((a, b) => end(b) - start(b) - (end(a) - start(a)))[0];
}

function report(dir: string, name: string): string {
  const workload = JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')) as Workload;
  const events = replay(join(dir, `${name}.bin`));
  const lines = [`${name}: PyTorch ${workload.torch} on ${workload.device}, pid ${String(workload.pid)}`];

  const eager = workload.phases.eager;
  const launched = eager
    ? kernelsLaunched(events, workload.pid, eager.began.unix_ns, eager.ended.unix_ns)
    : new Map<string, number>();
  const profiled = workload.profiler.kernels ?? {};
  lines.push(`  eager phase: kernels (PyTorch's profiler, Causeway) ${workload.profiler.error ?? ''}`);
  for (const [kernel, count] of Object.entries(profiled)) {
    lines.push(`    ${String(count)}, ${String(launched.get(kernel) ?? 0)}  ${kernel.slice(0, 100)}`);
  }
  for (const [kernel, count] of launched) {
    if (!(kernel in profiled)) lines.push(`    -, ${String(count)}  ${kernel.slice(0, 100)} (not in the profile)`);
  }

  const syncs = events.filter((e) => e.kind === 'cuda.sync' && e.tid === workload.tid);
  lines.push('  waits: PyTorch ms, Causeway ms, the cuda.sync (polls: Causeway/PyTorch)');
  for (const wait of [...workload.waits, ...workload.graph_replays]) {
    const sync = syncFor(wait, syncs);
    const polls =
      wait.polls === undefined
        ? ''
        : ` polls ${String(sync?.attributes['causeway.cuda.sync.polls'])}/${String(wait.polls)}`;
    lines.push(
      sync === undefined
        ? `    ${ms(wait.wall_ns)}, none  ${wait.api}`
        : `    ${ms(wait.wall_ns)}, ${ms(end(sync) - start(sync))}  ${wait.api}: ${String(sync.attributes['causeway.cuda.api'])}${polls}`,
    );
  }

  const graph = events.filter((e) => e.pid === workload.pid && e.attributes['causeway.cuda.api'] === 'cudaGraphLaunch');
  const kernels = graph[0]?.attributes['causeway.cuda.graph.kernels'] as string[] | undefined;
  lines.push(
    `  graph: ${String(workload.phases.graph?.replays)} replays, ${String(graph.length)} cudaGraphLaunch; ` +
      `${String(graph[0]?.attributes['causeway.cuda.graph.kernel_count'])} kernels, named: ${(kernels ?? []).map((k) => k.slice(0, 40)).join(' | ')}`,
  );
  return lines.join('\n');
}

const dir = process.argv[2];
if (dir === undefined || !existsSync(dir)) {
  process.stderr.write('usage: node dist/test/gpu/compare.js OUTDIR (what test/gpu/check.sh wrote)\n');
  process.exit(2);
}
const runs = readdirSync(dir)
  .filter((file) => file.endsWith('.bin') && existsSync(join(dir, file.replace(/\.bin$/, '.json'))))
  .map((file) => file.replace(/\.bin$/, ''));
for (const run of runs) process.stdout.write(`${report(dir, run)}\n`);
