// The OTLP receiver, in a process of its own, under 10,000 hostile requests (and bombs) generated from valid
// ones with a fixed seed (hostile.ts), half over HTTP and half over gRPC: each gets a clean
// answer (HTTP 200, 400, 413 or 503 with a body in the request's encoding; gRPC OK,
// INVALID_ARGUMENT, RESOURCE_EXHAUSTED or UNAVAILABLE), the process never exits, its memory
// after the run is bounded by what the run's own warm-up measured, and a valid request is
// accepted afterwards.
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { TRACE_SERVICE_EXPORT_PATH, otlpTypes } from '../../src/otlp/index.js';
import { RpcCode } from '../../src/otlp/protos.js';
import { hostileRequests, validRequest, type HostileRequest, type Media } from './hostile.js';
import type { Measure } from './receiver-process.js';

const SEED = 0x5eed_2026;
const REQUESTS = 10_000;
/** The receiver's default limit, which the bombs are sized against. */
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** Requests sent before the memory baseline is taken: every mutation, several times over. */
const WARM_UP = 2000;
const IN_FLIGHT = 16;

const CONTENT_TYPES: Record<Media, string> = { protobuf: 'application/x-protobuf', json: 'application/json' };
const HTTP_ANSWERS = new Map([
  [200, RpcCode.OK],
  [400, RpcCode.INVALID_ARGUMENT],
  [413, RpcCode.INVALID_ARGUMENT],
  [503, RpcCode.UNAVAILABLE],
]);
const GRPC_ANSWERS = new Set([
  grpc.status.OK,
  grpc.status.INVALID_ARGUMENT,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.UNAVAILABLE,
]);

interface Receiver {
  child: ChildProcess;
  httpUrl: string;
  grpcAddress: string;
  measure: () => Promise<Measure>;
  exited: () => string | undefined;
}

async function startReceiverProcess(): Promise<Receiver> {
  const child = fork(fileURLToPath(new URL('receiver-process.js', import.meta.url)), [], {
    execArgv: ['--expose-gc'],
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  let exit: string | undefined;
  child.on('exit', (code, signal) => {
    exit = `the receiver exited (${String(code ?? signal)}): ${stderr}`;
  });
  const ports = await new Promise<{ grpcPort: number; httpPort: number }>((resolve, reject) => {
    child.once('message', (m) => {
      resolve(m as { grpcPort: number; httpPort: number });
    });
    child.once('exit', () => {
      reject(new Error(exit));
    });
  });
  return {
    child,
    httpUrl: `http://127.0.0.1:${String(ports.httpPort)}/v1/traces`,
    grpcAddress: `127.0.0.1:${String(ports.grpcPort)}`,
    measure: () =>
      new Promise((resolve) => {
        child.once('message', (m) => {
          resolve(m as Measure);
        });
        child.send('measure');
      }),
    exited: () => exit,
  };
}

const passthrough = (b: Buffer) => b;

/** Why an HTTP answer is not a clean one, or undefined when it is. */
function httpProblem(request: HostileRequest, status: number, contentType: string | null, body: Buffer) {
  const code = HTTP_ANSWERS.get(status);
  if (code === undefined) return `HTTP ${String(status)}`;
  if (contentType !== CONTENT_TYPES[request.media]) return `HTTP ${String(status)} answered as ${String(contentType)}`;
  try {
    const types = otlpTypes();
    if (request.media === 'json') JSON.parse(body.toString('utf8'));
    else if (status === 200) types.ExportTraceServiceResponse.decode(body);
    else if ((types.Status.decode(body) as unknown as { code: number }).code !== code) return 'wrong status code';
  } catch (error) {
    return `HTTP ${String(status)} with an unreadable body: ${String(error)}`;
  }
  return undefined;
}

test('10,000 hostile OTLP requests over HTTP and gRPC get clean answers; the receiver survives, its memory stays bounded, and it still accepts a valid request', async (t) => {
  const receiver = await startReceiverProcess();
  t.after(() => {
    receiver.child.disconnect();
  });
  const plain = new grpc.Client(receiver.grpcAddress, grpc.credentials.createInsecure());
  const gzip = new grpc.Client(receiver.grpcAddress, grpc.credentials.createInsecure(), {
    'grpc.default_compression_algorithm': grpc.compressionAlgorithms.gzip,
  });
  t.after(() => {
    plain.close();
    gzip.close();
  });
  const grpcExport = (client: grpc.Client, body: Buffer) =>
    new Promise<grpc.status>((resolve) => {
      client.makeUnaryRequest(TRACE_SERVICE_EXPORT_PATH, passthrough, passthrough, body, (error) => {
        resolve(error?.code ?? grpc.status.OK);
      });
    });
  const httpExport = async (request: HostileRequest) => {
    const headers: Record<string, string> = { 'content-type': CONTENT_TYPES[request.media] };
    if (request.encoding !== undefined) headers['content-encoding'] = request.encoding;
    const response = await fetch(receiver.httpUrl, { method: 'POST', headers, body: request.body });
    const body = Buffer.from(await response.arrayBuffer());
    count(`http ${String(response.status)}`);
    return httpProblem(request, response.status, response.headers.get('content-type'), body);
  };

  const start = await receiver.measure();
  const problems: string[] = [];
  const answers = new Map<string, number>();
  const count = (answer: string) => answers.set(answer, (answers.get(answer) ?? 0) + 1);
  let warm: Measure | undefined;
  let sent = 0;
  const requests = hostileRequests(SEED, REQUESTS, MAX_MESSAGE_BYTES);
  const worker = async () => {
    for (let next = requests.next(); next.done !== true; next = requests.next()) {
      const request = next.value;
      const index = sent++;
      if (index === WARM_UP) warm = await receiver.measure();
      let problem: string | undefined;
      if (index % 2 === 0) {
        problem = await httpExport(request).catch((error: unknown) => `HTTP request failed: ${String(error)}`);
      } else {
        // A bomb on gRPC: its inflated bytes, which the gzip channel compresses again on the wire.
        const bomb = request.kind.startsWith('gzip bomb');
        const code = await grpcExport(
          bomb || index % 4 === 3 ? gzip : plain,
          bomb ? gunzipSync(request.body) : request.body,
        );
        if (!GRPC_ANSWERS.has(code)) problem = `gRPC ${grpc.status[code]}`;
        count(`gRPC ${grpc.status[code]}`);
      }
      if (problem !== undefined && problems.length < 20) problems.push(`#${String(index)} ${request.kind}: ${problem}`);
      const exit = receiver.exited();
      if (exit !== undefined) throw new Error(`after #${String(index)} ${request.kind}: ${exit}`);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const end = await receiver.measure();
  t.diagnostic(`seed ${String(SEED)}: ${String(sent)} requests; ${JSON.stringify(Object.fromEntries(answers))}`);
  t.diagnostic(
    `main heap ${mib(start.heapUsed)} -> ${mib(warm?.heapUsed)} after ${String(WARM_UP)} -> ${mib(end.heapUsed)} MiB; servers' heap ${mib(start.serversHeapUsed)} -> ${mib(warm?.serversHeapUsed)} -> ${mib(end.serversHeapUsed)} MiB; rss ${mib(start.rss)} -> ${mib(warm?.rss)} -> ${mib(end.rss)} MiB`,
  );

  assert.ok(sent >= REQUESTS, `${String(sent)} requests`);
  assert.deepEqual(problems, []);
  assert.equal(receiver.exited(), undefined);
  assert.ok(warm !== undefined);
  // A leak grows with the requests: the 8,000 after the warm-up may add no more than the warm-up's
  // 2,000 did or, if that is more, 8 bytes each (half the smallest object V8 makes): a collected
  // heap moves by a few KiB without a leak, and a warm-up that shrank the heap left no room for it.
  // Both heaps: the servers' thread parses the requests, the main thread takes their spans.
  for (const heap of ['heapUsed', 'serversHeapUsed'] as const) {
    const allowed = Math.max(warm[heap] - start[heap], 8 * (sent - WARM_UP));
    assert.ok(
      end[heap] - warm[heap] <= allowed,
      `${heap} at the start ${String(start[heap])} bytes, after the warm-up ${String(warm[heap])}, at the end ${String(end[heap])}`,
    );
  }
  assert.ok(
    end.rss - warm.rss <= Math.max(0, warm.rss - start.rss),
    `rss after the warm-up ${mib(warm.rss)} MiB, at the end ${mib(end.rss)} MiB`,
  );

  const before = end.counters.spansAccepted;
  for (const [media, spans] of [
    ['protobuf', 3],
    ['json', 5],
  ] as const) {
    const body = validRequest(spans, media, spans);
    const response = await fetch(receiver.httpUrl, {
      method: 'POST',
      headers: { 'content-type': CONTENT_TYPES[media] },
      body,
    });
    assert.equal(response.status, 200, media);
    await response.arrayBuffer();
  }
  assert.equal(await grpcExport(plain, validRequest(4, 'protobuf', 4)), grpc.status.OK);
  assert.equal((await receiver.measure()).counters.spansAccepted, before + 12, 'every valid span accepted');
});

const mib = (bytes: number | undefined) => (bytes === undefined ? '?' : (bytes / 2 ** 20).toFixed(1));
