// The whole pipeline with real parts, for the tests that send traced requests through it: Jaeger,
// the collector with otel-config/collector.yaml, and `causeway run` between them.
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { ROOT } from '../bpf/session.js';
import { startSidecar, type Sidecar } from '../cli/sidecar.js';
import { freePort, startCollector, startJaeger, type Collector, type Jaeger } from './backends.js';

/** Jaeger, the collector and the sidecar, all stopped after the test. */
export async function startPipeline(
  t: TestContext,
): Promise<{ jaeger: Jaeger; collector: Collector; sidecar: Sidecar }> {
  const jaeger = await startJaeger();
  t.after(() => jaeger.stop());
  // The sidecar listens before the collector starts: a collector that found it down would
  // wait out gRPC's reconnect backoff before its first copy of app spans, and miss the request.
  const causewayPort = await freePort();
  const kernelGrpc = `127.0.0.1:${String(await freePort())}`;
  const sidecar = await startSidecar(`http://${kernelGrpc}`, `127.0.0.1:${String(causewayPort)}`);
  t.after(() => sidecar.stop());
  const collector = await startCollector(join(ROOT, 'otel-config', 'collector.yaml'), {
    JAEGER_OTLP_GRPC: jaeger.otlpGrpc,
    CAUSEWAY_OTLP_GRPC: `127.0.0.1:${String(causewayPort)}`,
    OTELCOL_KERNEL_GRPC: kernelGrpc,
  });
  t.after(() => collector.stop());
  return { jaeger, collector, sidecar };
}
