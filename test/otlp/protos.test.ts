// The proto text embedded in src/otlp/proto-text.ts must equal the .proto files,
// and the parsed types must have the OTLP field numbers.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PROTO_SOURCES } from '../../src/otlp/proto-text.js';
import { otlpTypes } from '../../src/otlp/protos.js';

// dist/test/otlp -> package root
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

test('embedded proto text matches src/otlp/proto (run node src/otlp/proto/embed.mjs if not)', () => {
  assert.ok(PROTO_SOURCES.length >= 8);
  for (const { path, text } of PROTO_SOURCES) {
    const onDisk = readFileSync(join(root, 'src', 'otlp', 'proto', path), 'utf8');
    assert.equal(text, onDisk, `${path} is stale: run node src/otlp/proto/embed.mjs`);
  }
});

test('parsed OTLP types carry the upstream field numbers', () => {
  const t = otlpTypes();
  const span = t.root.lookupType('opentelemetry.proto.trace.v1.Span');
  const ids: Record<string, number> = {};
  for (const f of span.fieldsArray) ids[f.name] = f.id;
  assert.deepEqual(
    {
      traceId: ids.traceId,
      spanId: ids.spanId,
      parentSpanId: ids.parentSpanId,
      name: ids.name,
      kind: ids.kind,
      start: ids.startTimeUnixNano,
      end: ids.endTimeUnixNano,
      attributes: ids.attributes,
      status: ids.status,
      flags: ids.flags,
    },
    {
      traceId: 1,
      spanId: 2,
      parentSpanId: 4,
      name: 5,
      kind: 6,
      start: 7,
      end: 8,
      attributes: 9,
      status: 15,
      flags: 16,
    },
  );
  assert.equal(t.ExportTraceServiceRequest.fields.resourceSpans?.id, 1);
  assert.equal(t.ExportTraceServiceResponse.fields.partialSuccess?.id, 1);
  assert.equal(t.Status.fields.details?.id, 3);
});
