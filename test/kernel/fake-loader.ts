// Writes an executable stand-in for bpf/build/causeway-loader that plays a scenario, so that
// supervision and decoding are tested without eBPF. It logs its argv and stdin commands,
// one JSON line per event, to `<dir>/log`.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type Scenario =
  /** Cannot run: a MESSAGE error, the same line on stderr, exit 2. */
  | 'cannot-run'
  /** Crashes (exit 1) on the first run, then runs until SIGTERM. */
  | 'crash-once'
  /** HELLO, a STATS pair, the EVENTS frame in <dir>/events, a WATERMARK; runs until SIGTERM, then a last STATS. */
  | 'stream'
  /** As 'stream', then two WATERMARK frames at once every 10 ms (every <dir>/tick-ms, when given): frames wait while the reader is busy. */
  | 'trickle'
  /** As 'trickle', and a STATS every 100 ms with one more ring-buffer drop than the last. */
  | 'trickle-dropping'
  /** As 'trickle', each tick's watermarks after the EVENTS frame in <dir>/events again. */
  | 'trickle-flooding';

const SCRIPT = (recordsModule: string) => `#!${process.execPath}
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { Kind } from ${JSON.stringify(new URL('../../src/kernel/record.js', import.meta.url).href)};
import { frame, hello, message, stats, watermark } from ${JSON.stringify(recordsModule)};

const dir = dirname(process.argv[1]);
const scenario = readFileSync(join(dir, 'scenario'), 'utf8');
const log = (entry) => appendFileSync(join(dir, 'log'), JSON.stringify(entry) + '\\n');
const runs = existsSync(join(dir, 'log')) ? readFileSync(join(dir, 'log'), 'utf8').split('\\n').filter((l) => l.includes('"argv"')).length : 0;
log({ argv: process.argv.slice(2), pid: process.pid });
// By line, not by chunk: a command can straddle two reads of the pipe.
createInterface({ input: process.stdin }).on('line', (line) => { if (line) log({ command: line }); });
const out = (buf) => process.stdout.write(buf);

if (scenario === 'cannot-run') {
  out(message({ level: 'error', msg: 'no BTF at /sys/kernel/btf/vmlinux' }));
  process.stderr.write('no BTF at /sys/kernel/btf/vmlinux\\n');
  process.stdout.end(() => process.exit(2));
} else if (scenario === 'crash-once' && runs === 0) {
  out(hello());
  setTimeout(() => process.exit(1), 300);
} else {
  out(hello());
  out(message({ level: 'info', event: 'library', path: '/usr/lib/libcudart.so.12', pid: 42, probes: 17 }));
  out(stats({ monoNs: 1000n, realNs: 1_700_000_000_000_000_000n, drops: { [Kind.SCHED_RUNQUEUE]: 4 }, events: { [Kind.SCHED_RUNQUEUE]: 9 } }));
  if (existsSync(join(dir, 'events'))) out(frame(2, readFileSync(join(dir, 'events'))));
  out(watermark(2000n));
  process.on('SIGTERM', () => {
    log({ signal: 'SIGTERM' });
    out(stats({ monoNs: 1000n, realNs: 1_700_000_000_000_000_000n, drops: { [Kind.SCHED_RUNQUEUE]: 6 }, shed: { [Kind.FUTEX_WAIT]: 8 }, events: { [Kind.SCHED_RUNQUEUE]: 12 }, unnamedKernels: 3 }));
    process.stdout.end(() => process.exit(0));
  });
  if (scenario.startsWith('trickle')) {
    let mono = 3000n;
    const events = scenario === 'trickle-flooding' ? [frame(2, readFileSync(join(dir, 'events')))] : [];
    const tickMs = existsSync(join(dir, 'tick-ms')) ? Number(readFileSync(join(dir, 'tick-ms'), 'utf8')) : 10;
    setInterval(() => out(Buffer.concat([...events, watermark(mono++), watermark(mono++)])), tickMs);
  } else setInterval(() => undefined, 1000);
  if (scenario === 'trickle-dropping') {
    let drops = 4;
    setInterval(() => out(stats({ monoNs: 1000n, realNs: 1_700_000_000_000_000_000n, drops: { [Kind.SCHED_RUNQUEUE]: ++drops } })), 100);
  }
}
`;

export interface FakeLoader {
  path: string;
  /** What it logged: one entry per start ({argv, pid}), stdin command ({command}) and SIGTERM ({signal}). */
  log: () => Record<string, unknown>[];
}

/** `tickMs`: the trickles' period (10 ms unless given). */
export function fakeLoader(scenario: Scenario, events?: Buffer, tickMs?: number): FakeLoader {
  const dir = mkdtempSync(join(tmpdir(), 'causeway-fake-loader-'));
  // A test may stop its sidecar last of all, so the script goes when the test process does.
  process.once('exit', () => {
    rmSync(dir, { recursive: true, force: true });
  });
  const path = join(dir, 'causeway-loader');
  writeFileSync(path, SCRIPT(new URL('./records.js', import.meta.url).href));
  chmodSync(path, 0o755);
  writeFileSync(join(dir, 'scenario'), scenario);
  if (events !== undefined) writeFileSync(join(dir, 'events'), events);
  if (tickMs !== undefined) writeFileSync(join(dir, 'tick-ms'), String(tickMs));
  const log = () => {
    try {
      return readFileSync(join(dir, 'log'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>);
    } catch {
      return [];
    }
  };
  return { path, log };
}
