// Events as a capture makes them: loader records (built by records.ts) through the real decoder
// and the shaper a capture uses, over this machine's process table.
import { captureParts } from '../../src/kernel/capture.js';
import { recordBytes, type KernelEvent } from '../../src/kernel/events.js';
import { ProcessTable } from '../../src/kernel/processes.js';
import { decodeRecords } from '../../src/kernel/record.js';

/** `self`: pids of Causeway's own loaders (this process is Causeway too); records' 0 ns is `epochNs`. */
export async function shaped(records: Buffer[], options: { self?: number[]; epochNs?: bigint } = {}) {
  const parts = captureParts(new ProcessTable(), (message) => {
    throw new Error(`unexpected message while shaping: ${message.msg}`);
  });
  for (const pid of options.self ?? []) parts.self.addLoader(pid);
  parts.clock.update(0n, options.epochNs ?? 0n);
  try {
    const batch = Buffer.concat(records);
    const decoded = decodeRecords(batch);
    await parts.cuda.learnNames(decoded);
    const bytes = recordBytes(batch);
    return decoded.map((r, i) => parts.shaper.shape(r, bytes, i)).filter((e): e is KernelEvent => e !== undefined);
  } finally {
    parts.demangler.close();
  }
}
