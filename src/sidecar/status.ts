// What the sidecar says about itself: the MCP status tool's answer, composed from each part's
// own status. (Its metrics are each part's own instruments: src/export/metrics.ts.)
import type { Correlator } from '../correlate/correlator.js';
import type { SpanSender } from '../export/sender.js';
import type { KernelCapture } from '../kernel/capture.js';
import type { AppSpan, OtlpReceiver } from '../otlp/index.js';
import type { Store } from '../store/store.js';

export interface ReportingParts {
  capture: KernelCapture;
  receiver: OtlpReceiver;
  correlator: Correlator<AppSpan>;
  sender: SpanSender;
  store: Store;
  exportUrl: string;
}

/** GPU processes the status lists; it counts them all. */
const STATUS_GPU_PROCESSES = 64;

export async function sidecarStatus(p: ReportingParts) {
  const store = await p.store.status();
  return {
    capture: p.capture.counters(),
    loader: p.capture.loaderReport() ?? null,
    gpu: p.capture.gpuProcesses(STATUS_GPU_PROCESSES),
    correlator: p.correlator.counters(),
    store,
    export: { ...p.sender.counters(), url: p.exportUrl },
    receiver: p.receiver.counters(),
    lag: {
      ...p.correlator.lag(),
      storeRowsBuffered: store.rowsBuffered,
      storeBehindMs: store.behindMs,
      storeLastFlushMs: store.lastFlushMs,
    },
  };
}

export type SidecarStatus = Awaited<ReturnType<typeof sidecarStatus>>;
