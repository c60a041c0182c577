// docker/prometheus: the configuration and alert rules checked by promtool, the rules' unit
// tests run, and the metrics they use looked up in what a real sidecar serves.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { kernelAvailable } from '../bpf/session.js';
import { startSidecar } from '../cli/sidecar.js';
import { ROOT, installed, output, promtool, run } from './tools.js';

test('promtool accepts the Prometheus configuration and the rule file it loads', (t) => {
  if (!installed(t, promtool)) return;
  const check = run(promtool, ['check', 'config', 'docker/prometheus/prometheus.yml']);
  assert.equal(check.status, 0, output(check));
  assert.match(check.stdout, /SUCCESS: 6 rules found/);
});

test('the alert rules pass their unit tests (promtool test rules)', (t) => {
  if (!installed(t, promtool)) return;
  const unit = run(promtool, ['test', 'rules', 'docker/prometheus/alerts.test.yml']);
  assert.equal(unit.status, 0, output(unit));
});

test('the six alerts are there, and every metric they use is served by a running sidecar', async (t) => {
  const rules = readFileSync(join(ROOT, 'docker', 'prometheus', 'alerts.yml'), 'utf8');
  assert.deepEqual(
    Array.from(rules.matchAll(/- alert: (\w+)/g), (m) => m[1]),
    [
      'CausewayDown',
      'CausewayCollectorUnreachable',
      'CausewayRingBufferDrops',
      'CausewayExportDrops',
      'CausewayStoreShedding',
      'CausewayReceiverRefusing',
    ],
  );
  if (!kernelAvailable(t)) return;
  const sidecar = await startSidecar('http://127.0.0.1:9');
  t.after(() => sidecar.stop());
  const served = new Set(Array.from((await sidecar.metrics()).matchAll(/^(\w+)[{ ]/gm), (m) => m[1]));
  const used = new Set(Array.from(rules.matchAll(/\b(causeway_\w+)/g), (m) => m[1]));
  assert.ok(used.size >= 5, `alerts.yml uses ${used.size} Causeway metrics`);
  for (const metric of used) assert.ok(served.has(metric), `${metric} is not served by causeway run`);
});
