// Events as a capture makes them: loader records (built by records.ts) through the real decoder
// and the shaper a capture uses, over this machine's process table.
import { captureParts } from '../../src/kernel/capture.js';
import { readWhole, recordBytes, type KernelEvent } from '../../src/kernel/events.js';
import { ProcessTable } from '../../src/kernel/processes.js';
import { decodeRecordsOf } from '../../src/kernel/record.js';

interface ShapedOptions {
  /** Pids of Causeway's own loaders (this process is Causeway too). */
  self?: number[];
  /** Records' 0 ns. */
  epochNs?: bigint;
}

/** The events of one batch of records. */
export async function shaped(records: Buffer[], options: ShapedOptions = {}): Promise<KernelEvent[]> {
  return (await shapedBatches([records], options))[0] ?? [];
}

/** The events of each batch of records (each an EVENTS frame of its own), shaped in order by one shaper. */
export async function shapedBatches(batches: Buffer[][], options: ShapedOptions = {}): Promise<KernelEvent[][]> {
  const parts = captureParts(new ProcessTable(), (message) => {
    throw new Error(`unexpected message while shaping: ${message.msg}`);
  });
  for (const pid of options.self ?? []) parts.self.addLoader(pid);
  parts.clock.update(0n, options.epochNs ?? 0n);
  try {
    const shapedBatches: KernelEvent[][] = [];
    for (const records of batches) {
      const batch = Buffer.concat(records);
      const decoded = decodeRecordsOf(batch, readWhole);
      await parts.cuda.learnNames(decoded, batch);
      shapedBatches.push(parts.shaper.shape(recordBytes(batch), decoded).events());
    }
    return shapedBatches;
  } finally {
    parts.demangler.close();
  }
}
