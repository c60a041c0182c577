// What finding every GPU process costs on a node with many processes: the loader's pass over
// /proc at start (the maps and executable of every process), and its CPU while idle afterwards
// (no periodic rescan: new programs and late dlopens are reported by the exec and mmap
// tracepoints), each measured without and with a few thousand extra idle processes.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { FrameReader } from '../../src/kernel/frames.js';
import { parseMessage } from '../../src/kernel/loader.js';
import { FrameType } from '../../src/kernel/record.js';
import { ROOT } from '../bpf/session.js';

const LOADER = join(ROOT, 'bpf', 'build', 'causeway-loader');
/** Idle processes added: a few thousand, bounded, all killed at the end. */
const EXTRA_PROCESSES = 3000;
const IDLE_SECONDS = 5;

const processCount = () => readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).length;
/** Time on CPU of a process, in ns (the first field of /proc/PID/schedstat). */
const cpuNs = (pid: number) => Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);

interface Discovery {
  processes: number;
  scanMs: number;
  idleCpuMsPerS: number;
}

/** Starts the loader following nothing by name, reads its scan, then its CPU over an idle stretch. */
async function measure(): Promise<Discovery> {
  const loader = spawn(LOADER, ['--comm', 'nothing-runs-this', '--stats-ms', '1000'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const reader = new FrameReader();
  const said: { scan?: Record<string, unknown>; hello?: true } = {};
  loader.stdout.on('data', (chunk: Buffer) => {
    for (const frame of reader.push(chunk)) {
      if (frame.type === FrameType.HELLO) said.hello = true;
      const fields = frame.type === FrameType.MESSAGE ? parseMessage(frame.payload).fields : {};
      if (fields.event === 'scan') said.scan = fields;
    }
  });
  const deadline = Date.now() + 60_000;
  while (said.hello === undefined) {
    if (loader.exitCode !== null || Date.now() > deadline) throw new Error('the loader did not start');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const pid = loader.pid ?? 0;
  const before = cpuNs(pid);
  await new Promise((resolve) => setTimeout(resolve, IDLE_SECONDS * 1000));
  const used = cpuNs(pid) - before;
  const exited = new Promise((resolve) => loader.on('close', resolve));
  loader.stdin.end('quit\n');
  await exited;
  const { scan } = said;
  if (scan === undefined) throw new Error('the loader said nothing about its scan');
  return { processes: Number(scan.processes), scanMs: Number(scan.ms), idleCpuMsPerS: used / 1e6 / IDLE_SECONDS };
}

/** EXTRA_PROCESSES sleeping processes in a group of their own, once they all exist. */
async function idleProcesses(): Promise<ChildProcess> {
  const base = processCount();
  const group = spawn('sh', ['-c', `i=0; while [ $i -lt ${EXTRA_PROCESSES} ]; do sleep 600 & i=$((i+1)); done; wait`], {
    detached: true,
    stdio: 'ignore',
  });
  const deadline = Date.now() + 120_000;
  while (processCount() < base + EXTRA_PROCESSES) {
    if (Date.now() > deadline) throw new Error('the idle processes did not all start');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return group;
}

export async function discoveryRows(): Promise<string[]> {
  process.stderr.write('bench: GPU-process discovery\n');
  const without = await measure();
  const group = await idleProcesses();
  let withMany: Discovery;
  try {
    withMany = await measure();
  } finally {
    process.kill(-(group.pid ?? 0), 'SIGKILL');
  }
  const row = (d: Discovery) => `${d.scanMs.toFixed(1)} ms for ${d.processes.toLocaleString('en-US')} processes`;
  const cpu = (d: Discovery) => `${d.idleCpuMsPerS.toFixed(2)} ms CPU/s with ${d.processes.toLocaleString('en-US')}`;
  return [
    `| GPU-process discovery at start (the maps and executable of every process), ${EXTRA_PROCESSES.toLocaleString('en-US')} idle processes added | ${row(without)}; ${row(withMany)} (${(((withMany.scanMs - without.scanMs) / (withMany.processes - without.processes)) * 1000).toFixed(1)} µs per added process) |`,
    `| loader CPU while idle afterwards, ${IDLE_SECONDS} s (no rescan: exec and mmap tracepoints report new GPU processes) | ${cpu(without)}; ${cpu(withMany)} |`,
  ];
}
