// `npm run bench --only python-thread-ctx`: what the Python thread-context writer
// (src/otlp/python/causeway_thread_ctx.py) adds to an asyncio task switch, in its worst case
// (every switch changes the span to publish). One Python process runs alternating rounds with
// and without the writer's hooks (python_task_switch.py); a round's ratio and added time are
// taken against the other configuration of the same round.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from '../bpf/session.js';
import { pythonBin } from '../e2e/backends.js';
import { describeRatio, spread } from './rounds.js';

const SCRIPT = join(ROOT, 'test', 'bench', 'python_task_switch.py');
/** Task switches per configuration per round and second: about a second of switching here. */
const SWITCHES_PER_SECOND = 200_000;
/** The added CPU per task switch the writer may cost (issue 14). */
const TARGET_NS = 200;

export async function pythonThreadContextRows(rounds: number, roundSeconds: number): Promise<string[]> {
  process.stderr.write('bench: Python thread-context writer, asyncio task switches\n');
  const { stdout } = await promisify(execFile)(pythonBin, [
    SCRIPT,
    String(rounds),
    String(SWITCHES_PER_SECOND * roundSeconds),
  ]);
  const measured = JSON.parse(stdout) as { without: number[]; with: number[] };
  const paired = measured.without.map((without, round) => ({ without, with: measured.with[round] ?? NaN }));
  const ns = (values: number[]) => spread(values).median.toFixed(0);
  const added = spread(paired.map((r) => r.with - r.without));
  const verdict = added.high <= TARGET_NS ? 'met' : added.low > TARGET_NS ? 'not met' : 'within noise of it';
  return [
    `| Python asyncio task switch (100 tasks, each in its own span; every switch publishes another span), CPU per switch, median of ${String(rounds)} alternating rounds | ${ns(measured.without)} ns without the writer, ${ns(measured.with)} ns with it: ${describeRatio(spread(paired.map((r) => r.with / r.without)))}; added ${added.median.toFixed(0)} ns (${added.low.toFixed(0)}–${added.high.toFixed(0)}) per switch, target ≤ ${String(TARGET_NS)} ns ${verdict} |`,
  ];
}
