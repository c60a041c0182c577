// `npm run soak`: the soak of test/soak/soak.ts for 30 minutes (SOAK_MINUTES to change it), at
// about 20k kernel events/s and 1k app spans/s, two collector outages of a minute and a loader
// kill; prints the samples as JSON lines, then the slopes and what was lost.
import { describe, soak } from './soak.js';

const minutes = Number(process.env.SOAK_MINUTES ?? 30);
const report = await soak({
  durationMs: minutes * 60_000,
  switchesPerS: 10_000,
  spansPerS: 1000,
  outageMs: Math.min(60_000, minutes * 6_000),
  sampleEveryMs: 10_000,
  log: (line) => process.stderr.write(`soak: ${line}\n`),
});
for (const sample of report.samples) process.stdout.write(`${JSON.stringify(sample)}\n`);
for (const line of describe(report)) process.stdout.write(`${line}\n`);
