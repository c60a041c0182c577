// A trace as Tempo's /api/traces answers it. Tempo is not installed on the test machines, so
// this document is written by hand after Tempo's documented and observed answers: `batches`
// instead of `resourceSpans`, ids in base64, enums by name, 64-bit integers as strings.
export const s = (stringValue: string) => ({ stringValue });
export const i = (n: number) => ({ intValue: String(n) });
export const kv = (attributes: Record<string, object>) =>
  Object.entries(attributes).map(([key, value]) => ({ key, value }));

const T0 = 1_700_000_000_000_000_000n;
export const at = (ms: number) => String(T0 + BigInt(ms) * 1_000_000n);

// Trace 0af7651916cd43dd8448eb211c80319c; spans 00f067aa0ba902b7 (gateway), b7ad6b7169203331
// (checkout), 53995c3f42cd8ad8 and 7c1a2b3c4d5e6f70 (checkout's kernel spans), 1111111111111111
// (gateway's kernel span). Both apps run in containers: pid 1 and 12 there, 5001 and 30012 on the host.
const TRACE = 'CvdlGRbNQ92ESOshHIAxnA==';
const checkout = {
  attributes: kv({
    'service.name': s('checkout'),
    'process.pid': i(12),
    'container.id': s('abc123'),
    'telemetry.sdk.language': s('python'),
  }),
};
const gateway = {
  attributes: kv({
    'service.name': s('gateway'),
    'process.pid': i(1),
    'container.id': s('def456'),
    'telemetry.sdk.language': s('nodejs'),
  }),
};
const checkoutThread = {
  'causeway.thread.tid': i(30013),
  'thread.name': s('gunicorn'),
  'causeway.attach.scope': s('thread'),
  'causeway.process.nspid': { arrayValue: { values: [i(30012), i(12)] } },
};

export const tempoTrace = {
  batches: [
    {
      resource: gateway,
      scopeSpans: [
        {
          scope: { name: '@opentelemetry/instrumentation-http', version: '0.57.0' },
          spans: [
            {
              traceId: TRACE,
              spanId: 'APBnqgupArc=',
              name: 'GET /checkout',
              kind: 'SPAN_KIND_SERVER',
              startTimeUnixNano: at(0),
              endTimeUnixNano: at(600),
              status: {},
            },
          ],
        },
        {
          scope: { name: 'causeway', version: '0.1.0' },
          spans: [
            {
              traceId: TRACE,
              spanId: 'ERERERERERE=',
              parentSpanId: 'APBnqgupArc=',
              name: 'off CPU (blocked)',
              kind: 'SPAN_KIND_INTERNAL',
              startTimeUnixNano: at(10),
              endTimeUnixNano: at(40),
              attributes: kv({
                'causeway.kind': s('sched.blocked'),
                'causeway.thread.tid': i(5001),
                'thread.name': s('node'),
                'causeway.attach.scope': s('thread'),
                'causeway.process.nspid': { arrayValue: { values: [i(5001), i(1)] } },
                'causeway.sched.state': s('S'),
              }),
              status: {},
            },
          ],
        },
      ],
    },
    {
      resource: checkout,
      scopeSpans: [
        {
          scope: { name: 'opentelemetry.instrumentation.flask', version: '0.50b0' },
          spans: [
            {
              traceId: TRACE,
              spanId: 't61rcWkgMzE=',
              parentSpanId: 'APBnqgupArc=',
              name: 'POST /checkout',
              kind: 'SPAN_KIND_SERVER',
              startTimeUnixNano: at(50),
              endTimeUnixNano: at(550),
              attributes: kv({ 'causeway.thread.tid': i(13), 'http.route': s('/checkout') }),
              status: { code: 'STATUS_CODE_OK' },
            },
          ],
        },
        {
          scope: { name: 'causeway', version: '0.1.0' },
          spans: [
            {
              traceId: TRACE,
              spanId: 'U5lcP0LNitg=',
              parentSpanId: 't61rcWkgMzE=',
              name: 'run queue wait',
              kind: 'SPAN_KIND_INTERNAL',
              startTimeUnixNano: at(100),
              endTimeUnixNano: at(150),
              attributes: kv({
                'causeway.kind': s('sched.runqueue'),
                ...checkoutThread,
                'causeway.sched.cpu': i(3),
                'causeway.sched.holder.pid': i(999),
                'causeway.sched.holder.comm': s('stress'),
                'causeway.sched.preempted': { boolValue: true },
              }),
              status: {},
            },
            {
              traceId: TRACE,
              spanId: 'fBorPE1eb3A=',
              parentSpanId: 't61rcWkgMzE=',
              name: 'kernel activity',
              kind: 'SPAN_KIND_INTERNAL',
              startTimeUnixNano: at(50),
              endTimeUnixNano: at(550),
              attributes: kv({
                'causeway.attach.scope': s('thread'),
                // Kernel events of its time were shed: the sidecar was behind.
                'causeway.attach.shed': { boolValue: true },
                'causeway.sched.runqueue.duration_ms': { doubleValue: 50 },
                'causeway.cuda.launch.count': i(1),
              }),
              events: [
                {
                  timeUnixNano: at(60),
                  name: 'cuda.launch',
                  attributes: kv({
                    'causeway.kind': s('cuda.launch'),
                    ...checkoutThread,
                    'causeway.duration_ms': { doubleValue: 0.035 },
                    'causeway.cuda.kernel': s('matmul(float*)'),
                    'causeway.cuda.grid': { arrayValue: { values: [i(64), i(1), i(1)] } },
                  }),
                },
                {
                  timeUnixNano: at(200),
                  name: 'tcp.retransmit',
                  attributes: kv({
                    'causeway.kind': s('tcp.retransmit'),
                    ...checkoutThread,
                    'causeway.duration_ms': { doubleValue: 0 },
                    'network.peer.address': s('10.1.2.3'),
                    'network.peer.port': i(443),
                  }),
                },
              ],
              status: {},
            },
          ],
        },
      ],
    },
  ],
};
