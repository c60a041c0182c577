// `causeway demo`: the main job on one machine, without a GPU. Workloads on the simulated
// CUDA runtime (test/fixtures) make a GPU stall, contention from a second GPU user and a lock
// held across a GPU wait; the real probes capture them and the events print as a table.
import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { KernelCapture } from '../kernel/capture.js';
import { packageRoot } from '../install.js';
import { TABLE_HEADER, closingSummary, toTableRow } from './capture.js';
import { UsageError } from './usage.js';

export const DEMO_HELP = `Usage: causeway demo

Runs workloads on the simulated GPU (built by \`npm run build\` into test/fixtures/build)
while capturing with the real eBPF probes, and prints what the kernel saw:
  1. gpu_sync waits 200 ms in cudaStreamSynchronize for its kernel, while gpu_hog, a
     second process, keeps the same device busy: the sync takes longer (contention);
  2. mutex_convoy: a waiter blocks on a mutex whose holder is inside a GPU sync.
Needs root (see \`causeway doctor\`). Takes about 3 seconds.
`;

const WORKLOADS = join(packageRoot, 'test', 'fixtures', 'build', 'workloads');
const SIM_CUDART = join(packageRoot, 'test', 'fixtures', 'build', 'cudasim', 'libcudart.so.12');

function run(program: string, args: string[], env: Record<string, string>): Promise<void> {
  const child = spawn(join(WORKLOADS, program), args, { stdio: 'ignore', env: { ...process.env, ...env } });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${program} exited with ${String(code)}`));
    });
  });
}

export async function demo(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(DEMO_HELP);
    return 0;
  }
  if (argv.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(argv[0])}`);
  if (!existsSync(SIM_CUDART)) throw new UsageError(`the simulated GPU is not built (${SIM_CUDART}): run npm run build`);

  const gpu = { CUDA_SIM_TIMELINE: `/dev/shm/causeway-demo-${process.pid}` };
  const session = new KernelCapture({
    pids: [],
    comms: ['gpu_sync', 'gpu_hog', 'mutex_convoy'],
    libs: [SIM_CUDART],
    minDurationUs: 1000,
    onMessage: (message) => {
      if (message.level !== 'info') process.stderr.write(`causeway: ${message.level}: ${message.msg}\n`);
    },
    onEvents: (events) => {
      process.stdout.write(events.map(toTableRow).join(''));
    },
  });
  session.start();
  const ready = await Promise.race([session.ready, session.ended]);
  if ('failure' in ready) {
    process.stderr.write(`causeway demo: cannot capture: ${ready.failure ?? 'stopped'}\n`);
    return 1;
  }
  process.stdout.write(`Capturing on ${ready.ncpus} CPUs. 1: a GPU sync, while a second process uses the GPU.\n${TABLE_HEADER}`);
  try {
    await Promise.all([run('gpu_hog', ['--seconds', '1', '--kernel-ms', '100'], gpu), run('gpu_sync', ['--kernel-ms', '200', '--start-delay-ms', '100'], gpu)]);
    process.stdout.write('2: a waiter blocked on a mutex held across cudaStreamSynchronize.\n');
    await run('mutex_convoy', ['--hold-ms', '150', '--holder-work', 'gpu'], gpu);
    await new Promise((resolve) => setTimeout(resolve, 300));
  } finally {
    await session.stop();
    rmSync(gpu.CUDA_SIM_TIMELINE, { force: true });
  }
  process.stdout.write(closingSummary(session.counters()));
  return 0;
}
