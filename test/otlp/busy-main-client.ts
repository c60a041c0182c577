// An OTLP/HTTP client in a thread of its own, so it keeps sending while the test's main thread is
// blocked. workerData: { port, body, n, shared } where shared is an Int32Array's buffer of
// BusyMainCell slots. On 'free' it sends n requests, each on a new connection, and answers with
// how long they took (ms). On 'blocked' it sends one trigger request (whose delivery blocks the
// main thread and sets BLOCKED), waits for BLOCKED, sends n requests each on a new connection and
// counts every answer, and whether it came while the main thread was still blocked; then 'done'.
import * as http from 'node:http';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';

export const BusyMainCell = {
  BLOCKED: 0,
  ANSWERED: 1,
  ANSWERED_WHILE_BLOCKED: 2,
  OK: 3,
  REFUSED: 4,
  OTHER: 5,
} as const;
export const BUSY_MAIN_CELLS = 6;

export interface BusyMainClient {
  port: number;
  body: Uint8Array;
  n: number;
  shared: SharedArrayBuffer;
}

function postOnNewConnection(port: number, body: Uint8Array): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/v1/traces',
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/x-protobuf', 'content-length': body.length },
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          resolve(res.statusCode ?? 0);
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

if (parentPort !== null) {
  const to = parentPort;
  const { port, body, n, shared } = workerData as BusyMainClient;
  const cells = new Int32Array(shared);
  to.on('message', (phase: 'free' | 'blocked') => {
    void (async () => {
      if (phase === 'free') {
        const start = performance.now();
        await Promise.all(Array.from({ length: n }, () => postOnNewConnection(port, body)));
        to.postMessage(performance.now() - start);
        return;
      }
      const trigger = postOnNewConnection(port, body);
      while (Atomics.load(cells, BusyMainCell.BLOCKED) === 0) await sleep(1);
      await Promise.all(
        Array.from({ length: n }, async () => {
          const status = await postOnNewConnection(port, body);
          if (Atomics.load(cells, BusyMainCell.BLOCKED) === 1)
            Atomics.add(cells, BusyMainCell.ANSWERED_WHILE_BLOCKED, 1);
          const cell = status === 200 ? BusyMainCell.OK : status === 503 ? BusyMainCell.REFUSED : BusyMainCell.OTHER;
          Atomics.add(cells, cell, 1);
          Atomics.add(cells, BusyMainCell.ANSWERED, 1);
        }),
      );
      await trigger;
      to.postMessage('done');
    })();
  });
}
