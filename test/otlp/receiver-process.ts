// The OTLP receiver in a process of its own, for the tests that attack it: a crash shows as the
// process exiting, and its memory is its own. Run with --expose-gc and an IPC channel (fork):
// it sends {grpcPort, httpPort} once listening, and answers 'measure' with its memory after a
// full collection (the main thread's heap, and the OTLP servers' thread's: an isolate of its
// own) and its receiver counters.
import { startOtlpReceiver } from '../../src/otlp/index.js';

export interface Measure {
  heapUsed: number;
  serversHeapUsed: number;
  rss: number;
  counters: ReturnType<Awaited<ReturnType<typeof startOtlpReceiver>>['counters']>;
}

const collect = (globalThis as { gc?: () => void }).gc;
if (collect === undefined || process.send === undefined) throw new Error('run with --expose-gc, through fork()');
const send = process.send.bind(process);

let spansDelivered = 0;
const receiver = await startOtlpReceiver({
  grpc: { host: '127.0.0.1', port: 0 },
  http: { host: '127.0.0.1', port: 0 },
  onSpans: (spans) => {
    spansDelivered += spans.length;
  },
});
process.on('message', (message) => {
  if (message !== 'measure') return;
  void receiver.heap(true).then((servers) => {
    if (servers?.collected !== true)
      throw new Error(`the servers' thread did not collect its heap: ${JSON.stringify(servers)}`);
    collect();
    collect();
    const counters = receiver.counters();
    if (counters.spansDelivered !== spansDelivered) throw new Error('onSpans saw other spans than the counters say');
    const { heapUsed, rss } = process.memoryUsage();
    send({ heapUsed, serversHeapUsed: servers.used, rss, counters } satisfies Measure);
  });
});
process.on('disconnect', () => {
  void receiver.close().then(() => process.exit(0));
});
send({ grpcPort: receiver.grpcPort, httpPort: receiver.httpPort });
