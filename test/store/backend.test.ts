import assert from 'node:assert/strict';
import { test } from 'node:test';
import { querySource } from '../../src/store/backend.js';
import { JaegerSource } from '../../src/store/jaeger.js';
import { TempoSource } from '../../src/store/tempo.js';

test('--query-backend names Jaeger or Tempo by URL, and nothing else', () => {
  const jaeger = querySource('jaeger=http://jaeger.observability:16686');
  assert.ok(jaeger instanceof JaegerSource);
  assert.equal(jaeger.name, 'jaeger at http://jaeger.observability:16686/');
  const tempo = querySource('tempo=https://tempo.example/prefix?x=1');
  assert.ok(tempo instanceof TempoSource);
  assert.equal(tempo.name, 'tempo at https://tempo.example/prefix/');
  for (const spec of [
    'zipkin=http://zipkin:9411',
    'jaeger',
    'jaeger=',
    '=http://jaeger:16686',
    'http://jaeger:16686',
  ]) {
    assert.throws(() => querySource(spec), /expected jaeger=URL or tempo=URL/, spec);
  }
  assert.throws(() => querySource('jaeger=jaeger:16686:x'), /jaeger: (not a URL|expected an http or https URL)/);
  assert.throws(() => querySource('tempo=file:///etc/passwd'), /tempo: expected an http or https URL/);
});
