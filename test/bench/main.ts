// `npm run bench`: what capture costs, measured in one run on this machine. Prints a table:
// workload throughput and CPU per operation without probes, with Causeway's probes and with
// bpftrace attaching the same probes (ratios to the run without); the user-space decode rate
// per core; drops at a high event rate; how long capture takes to start; the sidecar's span
// throughput and join delay (pipeline.ts); the store and the MCP tools at 1M events (store.ts);
// what finding every GPU process costs on a node with many processes (discovery.ts).
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { KernelCapture, captureParts } from '../../src/kernel/capture.js';
import { ProcessTable } from '../../src/kernel/processes.js';
import { CudaApi, Kind } from '../../src/kernel/record.js';
import { fakeLoader } from '../kernel/fake-loader.js';
import { launch, record, register } from '../kernel/records.js';
import { Capture, SIM_CUDART, WORKLOADS } from '../bpf/session.js';
import { discoveryRows } from './discovery.js';
import { pipelineRows } from './pipeline.js';
import { storeRows } from './store.js';

const SECONDS = 3;
const CLOCK_TICKS = 100; // USER_HZ: /proc/PID/stat times are in 1/100 s

interface Run {
  /** Operations per second the workload achieved. */
  rate: number;
  /** CPU time of the workload (user + system, including time in the probes) per operation. */
  cpuUsPerOp: number;
}

interface Workload {
  title: string;
  program: string;
  args: string[];
  /** Operations done, from the workload's ground truth. */
  ops: (truth: Record<string, unknown>) => number;
  rate: (truth: Record<string, unknown>) => number;
}

const WORKLOAD_SET: Workload[] = [
  {
    title: 'launch-heavy, 10k launches/s',
    program: 'launch_storm',
    args: ['--rate', '10000', '--seconds', String(SECONDS)],
    ops: (t) => Number(t.launches),
    rate: (t) => Number(t.launches_per_s),
  },
  {
    title: 'launch-heavy, 100k launches/s',
    program: 'launch_storm',
    args: ['--rate', '100000', '--seconds', String(SECONDS)],
    ops: (t) => Number(t.launches),
    rate: (t) => Number(t.launches_per_s),
  },
  // The entry points serving engines call, each as fast as it goes: the cost of one probed call.
  ...(['graph-launch', 'event-record', 'event-query', 'event-query-busy'] as const).map((call): Workload => ({
    title: `${call}${call === 'event-query-busy' ? ' (not ready: a poll)' : ''}, as fast as possible`,
    program: 'call_storm',
    args: ['--call', call, '--seconds', String(SECONDS)],
    ops: (t) => Number(t.calls),
    rate: (t) => Number(t.calls_per_s),
  })),
  {
    title: 'context-switch ping-pong, 50k switches/s',
    program: 'switch_pingpong',
    args: ['--rate', '50000', '--seconds', String(SECONDS)],
    ops: (t) => Number(t.switches),
    rate: (t) => Number(t.switches_per_s),
  },
  {
    // Every write and read is an ipc.message: the pipe probes' cost per round trip (two writes, two reads).
    title: 'pipe request/reply (a write and a read at each end), as fast as possible',
    program: 'pipe_echo',
    args: ['--count', '200000', '--size', '64'],
    ops: (t) => Number(t.echoed),
    rate: (t) => Number(t.echoes_per_s),
  },
];

/** Runs a workload under sh, whose own stat then holds the workload's CPU time (cutime, cstime). */
async function runMeasured(workload: Workload): Promise<Run> {
  const script = `"$@" > "$CAUSEWAY_BENCH_OUT"; cat /proc/$$/stat`;
  const out = `/tmp/causeway-bench-${process.pid}.json`;
  const child = spawn('sh', ['-c', script, 'sh', `${WORKLOADS}/${workload.program}`, ...workload.args], {
    env: { ...process.env, CAUSEWAY_BENCH_OUT: out, CUDA_SIM_TIMELINE: `/dev/shm/causeway-bench-${process.pid}` },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stat = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stat += chunk.toString();
  });
  await new Promise((resolve) => child.on('exit', resolve));
  const truth = JSON.parse(readFileSync(out, 'utf8').trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
  rmSync(out, { force: true });
  // Fields after the command name: cutime and cstime are the 16th and 17th of the whole line.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuS = (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS;
  return { rate: workload.rate(truth), cpuUsPerOp: (cpuS * 1e6) / workload.ops(truth) };
}

/** bpftrace attaching what Causeway attaches for these workloads: the CUDA entry points, scheduler, futex and pipe I/O tracepoints. */
function bpftraceProgram(comm: string): string {
  const apis = [
    'cudaLaunchKernel',
    'cudaStreamSynchronize',
    'cudaDeviceSynchronize',
    'cudaEventSynchronize',
    'cudaMemcpy',
    'cudaMemcpyAsync',
    'cudaMalloc',
    'cudaFree',
    '__cudaRegisterFunction',
    'cudaLaunchKernel_ptsz',
    'cudaLaunchKernelExC',
    'cudaGraphLaunch',
    'cudaEventRecord',
    'cudaEventQuery',
    'cudaStreamQuery',
    'cudaStreamWaitEvent',
    'cudaStreamBeginCapture',
    'cudaStreamEndCapture',
    'cudaGraphInstantiateWithFlags',
    'cudaSetDevice',
  ];
  const enter = apis.map((api) => `uprobe:${SIM_CUDART}:${api}`).join(',\n');
  const exit = apis.map((api) => `uretprobe:${SIM_CUDART}:${api}`).join(',\n');
  return `
${enter} { @call[tid] = nsecs; @arg0[tid] = arg0; @arg1[tid] = arg1; @arg2[tid] = arg2; }
${exit} /@call[tid]/ { printf("cuda %d %d %s %llu %llu %llu %d\\n", pid, tid, comm, @call[tid], nsecs, @arg0[tid], retval); delete(@call[tid]); }
tracepoint:sched:sched_waking /args->comm == "${comm}" || comm == "${comm}"/ {
  if (@blocked[args->pid]) { printf("blocked %d %s %llu %llu %d\\n", args->pid, comm, @blocked[args->pid], nsecs, tid); delete(@blocked[args->pid]); }
  @runnable[args->pid] = nsecs;
}
tracepoint:sched:sched_switch {
  if (args->prev_comm == "${comm}") { if (args->prev_state == 0) { @runnable[args->prev_pid] = nsecs; } else { @blocked[args->prev_pid] = nsecs; } }
  if (args->next_comm == "${comm}" && @runnable[args->next_pid]) { printf("runqueue %d %llu %llu %s\\n", args->next_pid, @runnable[args->next_pid], nsecs, args->prev_comm); delete(@runnable[args->next_pid]); }
}
tracepoint:syscalls:sys_enter_futex /comm == "${comm}"/ { @futex[tid] = nsecs; @uaddr[tid] = args->uaddr; }
tracepoint:syscalls:sys_exit_futex /@futex[tid]/ { printf("futex %d %d %llu %llu %llu %d\\n", pid, tid, @futex[tid], nsecs, @uaddr[tid], args->ret); delete(@futex[tid]); }
tracepoint:syscalls:sys_enter_read, tracepoint:syscalls:sys_enter_readv, tracepoint:syscalls:sys_enter_write, tracepoint:syscalls:sys_enter_writev /comm == "${comm}"/ { @io[tid] = nsecs; @fd[tid] = args->fd; }
tracepoint:syscalls:sys_exit_read, tracepoint:syscalls:sys_exit_readv, tracepoint:syscalls:sys_exit_write, tracepoint:syscalls:sys_exit_writev /@io[tid]/ { printf("io %d %d %llu %llu %d %d\\n", pid, tid, @io[tid], nsecs, @fd[tid], args->ret); delete(@io[tid]); }
`;
}

/** Runs body while a tracer runs; the tracer's output is read (and dropped) as a consumer would. */
async function withTracer<T>(
  command: string[],
  readyWhen: (output: string) => boolean,
  body: () => Promise<T>,
): Promise<T> {
  const [file, ...args] = command as [string, ...string[]];
  const tracer = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keepStart = (chunk: Buffer) => {
    if (output.length < 4096) output += chunk.toString();
  };
  tracer.stdout.on('data', keepStart);
  tracer.stderr.on('data', keepStart);
  const deadline = Date.now() + 30_000;
  while (!readyWhen(output)) {
    if (tracer.exitCode !== null || Date.now() > deadline) throw new Error(`${file} did not start: ${output}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  try {
    return await body();
  } finally {
    const exited = new Promise((resolve) => tracer.on('exit', resolve));
    tracer.kill('SIGINT');
    await exited;
  }
}

const ratio = (value: number, base: number) => (value / base).toFixed(3);

async function overhead(): Promise<string[]> {
  const rows = [
    '| workload | without probes | with Causeway | with bpftrace | Causeway / without | bpftrace / without |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const workload of WORKLOAD_SET) {
    process.stderr.write(`bench: ${workload.title}\n`);
    const none = await runMeasured(workload);
    const causeway = await withTracer(
      [
        process.execPath,
        new URL('../../src/cli/main.js', import.meta.url).pathname,
        'capture',
        '--json',
        '--comm',
        workload.program,
        '--lib',
        SIM_CUDART,
      ],
      (output) => output.includes('capturing on'),
      () => runMeasured(workload),
    );
    const bpftraceScript = `/tmp/causeway-bench-${process.pid}.bt`;
    writeFileSync(bpftraceScript, bpftraceProgram(workload.program.slice(0, 15)));
    const bpftrace = await withTracer(
      ['bpftrace', bpftraceScript],
      (output) => output.includes('Attaching'),
      async () => {
        await new Promise((resolve) => setTimeout(resolve, 500)); // "Attaching N probes" comes just before it is done
        return runMeasured(workload);
      },
    );
    rmSync(bpftraceScript, { force: true });
    const cell = (r: Run) => `${Math.round(r.rate).toLocaleString('en-US')}/s, ${r.cpuUsPerOp.toFixed(2)} µs CPU/op`;
    rows.push(
      `| ${workload.title} | ${cell(none)} | ${cell(causeway)} | ${cell(bpftrace)} | rate ${ratio(causeway.rate, none.rate)}, CPU/op ${ratio(causeway.cpuUsPerOp, none.cpuUsPerOp)} | rate ${ratio(bpftrace.rate, none.rate)}, CPU/op ${ratio(bpftrace.cpuUsPerOp, none.cpuUsPerOp)} |`,
    );
  }
  return rows;
}

/** Frames, decoding and event shaping on one core, fed by a stand-in loader. */
async function decodeRate(): Promise<string> {
  const N = 400_000; // one EVENTS frame of 64 MB, under the frame limit
  const pid = process.pid;
  const records: Buffer[] = [register({ pid, func: 0x40n, name: '_Z10matmul_bigPfS_S_i' })];
  for (let i = 1; i < N; i++) {
    const startNs = 1_000_000n + BigInt(i) * 1000n;
    records.push(
      i % 2 === 0
        ? launch({ pid, tid: pid, api: CudaApi.cudaLaunchKernel, func: 0x40n, startNs, endNs: startNs + 500n })
        : record({ kind: Kind.SCHED_RUNQUEUE, pid, tid: pid, startNs, endNs: startNs + 20_000n }),
    );
  }
  const loader = fakeLoader('stream', Buffer.concat(records));
  let received = 0;
  let done!: () => void;
  const all = new Promise<void>((resolve) => (done = resolve));
  const onMessage = () => undefined;
  const capture = new KernelCapture(
    {
      pids: [],
      comms: [],
      libs: [],
      loaderPath: loader.path,
      onMessage,
      onEvents: (events) => {
        received += events.length;
        if (received >= N - 1) done();
      },
    },
    captureParts(new ProcessTable(), onMessage),
  );
  capture.start();
  await capture.ready;
  const cpu = process.cpuUsage();
  const start = performance.now();
  await all;
  const wallS = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  await capture.stop();
  const cpuS = (used.user + used.system) / 1e6;
  return `| user-space decode (frames, records, events) | ${Math.round(received / cpuS).toLocaleString('en-US')} events/s per core (${received.toLocaleString('en-US')} events in ${wallS.toFixed(2)} s, ${cpuS.toFixed(2)} s CPU) |`;
}

/** A high real event rate through the whole capture path: events delivered, and drops. */
async function highRate(): Promise<string> {
  const capture = new Capture(['--comm', 'switch_pingpong', '--min-duration-us', '0']);
  await capture.ready();
  const started = performance.now();
  const workload = spawn(`${WORKLOADS}/switch_pingpong`, ['--rate', '100000', '--seconds', String(SECONDS)], {
    stdio: 'ignore',
  });
  await new Promise((resolve) => workload.on('exit', resolve));
  const seconds = (performance.now() - started) / 1000;
  await new Promise((resolve) => setTimeout(resolve, 500));
  await capture.stop();
  const drops = /drops: (.*)/.exec(capture.stderr)?.[1] ?? '?';
  const mine = capture.events.filter((e) => e.comm === 'ping' || e.comm === 'pong').length;
  return `| kernel events at a high rate (ping-pong at 100k switches/s, every interval kept) | ${Math.round(mine / seconds).toLocaleString('en-US')} events/s delivered; drops: ${drops} |`;
}

async function startup(): Promise<string> {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const capture = new Capture(['--comm', 'nothing-runs-this']);
    await capture.ready();
    await capture.stop();
    times.push(Number(/ready in ([\d.]+) s/.exec(capture.stderr)?.[1]));
  }
  return `| capture start (probes attached, first record readable) | ${times.map((t) => `${t.toFixed(2)} s`).join(', ')} |`;
}

const rows = await overhead();
const others = [
  '| measure | result |',
  '| --- | --- |',
  await decodeRate(),
  await highRate(),
  await startup(),
  ...(await discoveryRows()),
  ...(await pipelineRows()),
  ...(await storeRows()),
];
rmSync(`/dev/shm/causeway-bench-${process.pid}`, { force: true });
process.stdout.write(`${rows.join('\n')}\n\n${others.join('\n')}\n`);
