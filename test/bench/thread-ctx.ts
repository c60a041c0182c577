// `npm run bench --only thread-ctx`: what reading the OpenTelemetry thread context costs the probes.
// One capture; in interleaved rounds, 20k CUDA launches from a process that publishes its
// active span (the probe reads the TLS slot and the record), from the same program publishing
// none (the slot alone, NULL), and from a process without the variable (one map lookup that
// misses). The CUDA entry probe's own run time per call comes from the kernel's BPF statistics
// (kernel.bpf_stats_enabled, switched on for the measure and back after): the ratios are of
// per-call times measured in the same run.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { CUDA_ENTER_PROGRAM, Capture, WORKLOADS, childrenOf } from '../bpf/session.js';
import { roundOrder, spread } from './rounds.js';

const LAUNCHES = 20_000;
const STATS = '/proc/sys/kernel/bpf_stats_enabled';

type Mode = 'record' | 'no record' | 'no variable';

const RUNS: Record<Mode, [string, string[]]> = {
  record: ['thread_ctx_exe', ['--wait-ms', '1', '--launches', String(LAUNCHES)]],
  'no record': ['thread_ctx_exe', ['--wait-ms', '1', '--launches', String(LAUNCHES), '--no-publish']],
  'no variable': ['launch_storm', ['--count', String(LAUNCHES), '--rate', '1000000']],
};

interface ProgStats {
  id: number;
  name?: string;
  run_time_ns?: number;
  run_cnt?: number;
}

/** The ids of the BPF programs a process holds (its fdinfo says each program fd's id). */
function programIds(pids: number[]): Set<number> {
  const ids = new Set<number>();
  for (const pid of pids)
    for (const fd of readdirSync(`/proc/${String(pid)}/fdinfo`)) {
      const id = /^prog_id:\s*(\d+)/m.exec(readFileSync(`/proc/${String(pid)}/fdinfo/${fd}`, 'utf8'))?.[1];
      if (id !== undefined) ids.add(Number(id));
    }
  return ids;
}

/** The capture's CUDA entry probe: its run time and runs so far. */
function entryProbe(ids: Set<number>): { ns: number; runs: number } {
  const progs = JSON.parse(execFileSync('bpftool', ['prog', 'show', '-j'], { encoding: 'utf8' })) as ProgStats[];
  const mine = progs.filter((p) => p.name === CUDA_ENTER_PROGRAM && ids.has(p.id));
  if (mine.length !== 1)
    throw new Error(`expected one ${CUDA_ENTER_PROGRAM} program of the capture, found ${String(mine.length)}`);
  return { ns: mine[0]?.run_time_ns ?? 0, runs: mine[0]?.run_cnt ?? 0 };
}

async function run(program: string, args: string[]): Promise<void> {
  const child = spawn(`${WORKLOADS}/${program}`, args, { stdio: 'ignore' });
  const code = await new Promise((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`${program} exited ${String(code)}`);
}

export async function threadContextRows(rounds: number): Promise<string[]> {
  const before = readFileSync(STATS, 'utf8').trim();
  writeFileSync(STATS, '1');
  const capture = new Capture(['--comm', 'thread_ctx_exe', '--comm', 'launch_storm', '--min-duration-us', '0']);
  try {
    await capture.ready();
    const ids = programIds(childrenOf(capture.pid));
    const perCall: Record<Mode, number[]> = { record: [], 'no record': [], 'no variable': [] };
    for (let round = 0; round < rounds; round++)
      for (const mode of roundOrder<Mode>(['record', 'no record', 'no variable'], round)) {
        const [program, args] = RUNS[mode];
        const start = entryProbe(ids);
        await run(program, args);
        const end = entryProbe(ids);
        perCall[mode].push((end.ns - start.ns) / Math.max(1, end.runs - start.runs));
      }
    const ratio = (a: Mode, b: Mode) => {
      const s = spread(perCall[a].map((ns, i) => ns / (perCall[b][i] ?? NaN)));
      return `${s.median.toFixed(2)} (${s.low.toFixed(2)}–${s.high.toFixed(2)})`;
    };
    const median = (mode: Mode) => spread(perCall[mode]).median.toFixed(0);
    return [
      `| CUDA entry probe, ${String(LAUNCHES)} launches (median of ${String(rounds)} interleaved rounds, one run) | ns per call: record / no record / no variable | ratio record : no variable (spread) | ratio no record : no variable (spread) |`,
      '| --- | --- | --- | --- |',
      `| thread context read (kernel.bpf_stats_enabled run time) | ${median('record')} / ${median('no record')} / ${median('no variable')} | ${ratio('record', 'no variable')} | ${ratio('no record', 'no variable')} |`,
    ];
  } finally {
    await capture.stop();
    writeFileSync(STATS, before);
  }
}
