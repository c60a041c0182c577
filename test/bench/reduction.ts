// `npm run bench --only reduction`: what in-kernel reduction saves. The same workloads (a launch
// storm at 20k and at 100k launches/s, a context-switch ping-pong) under `causeway capture` with
// reduction on and off, in interleaved rounds: records reaching user space per second, kernel
// events they stand for, and the CPU of the capture (node, its JSON output included, plus the
// loader) per second of workload.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import * as A from '../../src/semconv/attributes.js';
import { Capture, WORKLOADS, childrenOf } from '../bpf/session.js';
import { roundOrder, spread } from './rounds.js';

interface ReducedWorkload {
  title: string;
  program: string;
  args: (seconds: number) => string[];
}

const WORKLOADS_REDUCED: ReducedWorkload[] = [
  {
    title: 'launch storm, 20k launches/s',
    program: 'launch_storm',
    args: (s) => ['--rate', '20000', '--seconds', String(s)],
  },
  {
    title: 'launch storm, 100k launches/s',
    program: 'launch_storm',
    args: (s) => ['--rate', '100000', '--seconds', String(s)],
  },
  {
    title: 'ping-pong, 50k switches/s',
    program: 'switch_pingpong',
    args: (s) => ['--rate', '50000', '--seconds', String(s)],
  },
];

type Mode = 'on' | 'off';

interface Sample {
  recordsPerS: number;
  coveredPerS: number;
  cpuPerS: number;
  /** Records the ring could not take, all kinds (the capture's closing summary). */
  drops: number;
}

/** The sum of the counts on the closing summary's `drops:` line ("none" is 0). */
const dropsOf = (stderr: string) =>
  [...(/drops: (.*)/.exec(stderr)?.[1] ?? '').matchAll(/ (\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);

/** User plus system CPU seconds of a process, from /proc (10 ms ticks). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The capture CLI and its loader. */
function capturePids(cli: number): number[] {
  return [cli, ...childrenOf(cli)];
}

async function measure(workload: ReducedWorkload, mode: Mode, seconds: number): Promise<Sample> {
  const capture = new Capture([
    '--comm',
    workload.program.slice(0, 15),
    '--min-duration-us',
    '0',
    ...(mode === 'off' ? ['--reduce-window-ms', '0'] : []),
  ]);
  await capture.ready();
  const pids = capturePids(capture.pid);
  const cpuBefore = pids.map(cpuSeconds);
  const started = performance.now();
  const child = spawn(`${WORKLOADS}/${workload.program}`, workload.args(seconds), { stdio: 'ignore' });
  await new Promise((resolve) => child.on('exit', resolve));
  const wallS = (performance.now() - started) / 1000;
  await new Promise((resolve) => setTimeout(resolve, 500));
  const cpu = pids.map(cpuSeconds).reduce((sum, now, i) => sum + now - (cpuBefore[i] ?? 0), 0);
  await capture.stop();
  const mine = capture.events.filter((e) => e.pid === child.pid);
  const covered = mine.reduce((sum, e) => sum + (Number(e.attributes[A.ATTR_CAUSEWAY_SUMMARY_COUNT]) || 1), 0);
  return {
    recordsPerS: mine.length / wallS,
    coveredPerS: covered / wallS,
    cpuPerS: cpu / wallS,
    drops: dropsOf(capture.stderr),
  };
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const median = (values: number[]) => spread(values).median;

/** One row per workload: medians over the rounds, on and off, and the ratio of each round's pair. */
export async function reductionRows(rounds: number, seconds: number): Promise<string[]> {
  const rows = [
    `| workload (median of ${String(rounds)} interleaved rounds of ${String(seconds)} s) | records/s to user space, reduction on / off | kernel events/s covered, on / off | capture CPU (node + loader) per s, on / off | ring drops per run, on / off | records on / off (spread) | CPU on / off (spread) |`,
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const workload of WORKLOADS_REDUCED) {
    const samples: Record<Mode, Sample[]> = { on: [], off: [] };
    for (let round = 0; round < rounds; round++)
      for (const mode of roundOrder<Mode>(['on', 'off'], round))
        samples[mode].push(await measure(workload, mode, seconds));
    const of = (mode: Mode, key: keyof Sample) => median(samples[mode].map((s) => s[key]));
    const ratio = (key: keyof Sample) => {
      const s = spread(samples.on.map((on, i) => on[key] / (samples.off[i]?.[key] ?? NaN)));
      return `${s.median.toFixed(3)} (${s.low.toFixed(3)}–${s.high.toFixed(3)})`;
    };
    rows.push(
      `| ${workload.title} | ${fmt(of('on', 'recordsPerS'))} / ${fmt(of('off', 'recordsPerS'))} | ${fmt(of('on', 'coveredPerS'))} / ${fmt(of('off', 'coveredPerS'))} | ${of('on', 'cpuPerS').toFixed(3)} / ${of('off', 'cpuPerS').toFixed(3)} s | ${fmt(of('on', 'drops'))} / ${fmt(of('off', 'drops'))} | ${ratio('recordsPerS')} | ${ratio('cpuPerS')} |`,
    );
  }
  return rows;
}
