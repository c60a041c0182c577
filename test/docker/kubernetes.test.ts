// docker/kubernetes: the manifests validated offline against Kubernetes' schemas, the pieces
// that must agree with each other checked, and the collector snippet validated by the real
// collector merged into otel-config/collector.yaml.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { ROOT, compose, installed, kubernetesValidate, otelcol, output, run } from './tools.js';

const MANIFESTS = 'docker/kubernetes/causeway.yaml';

interface Resource {
  kind: string;
  data?: Record<string, string>;
  spec?: {
    template: {
      spec: {
        hostPID?: boolean;
        terminationGracePeriodSeconds?: number;
        containers: {
          args: string[];
          securityContext: { capabilities: { add: string[]; drop: string[] } };
          volumeMounts: { name: string; mountPath: string }[];
          livenessProbe?: unknown;
          readinessProbe?: unknown;
          resources: { requests: Record<string, string>; limits: Record<string, string> };
        }[];
        volumes: {
          name: string;
          hostPath?: { path: string };
          secret?: { secretName: string };
          configMap?: { name: string };
        }[];
      };
    };
  };
}

const resources = () => parseAllDocuments(readFileSync(join(ROOT, MANIFESTS), 'utf8')).map((d) => d.toJS() as Resource);
const daemonSet = () => resources().find((r) => r.kind === 'DaemonSet')?.spec?.template.spec;
const causewayConfig = () =>
  parse(resources().find((r) => r.kind === 'ConfigMap')?.data?.['causeway.yaml'] ?? '') as Record<string, unknown>;

test('kubernetes-validate accepts every manifest, strictly (no unknown fields)', (t) => {
  if (!installed(t, kubernetesValidate)) return;
  const check = run(kubernetesValidate, ['--strict', MANIFESTS]);
  assert.equal(check.status, 0, output(check));
  for (const kind of ['serviceaccount', 'configmap', 'daemonset', 'service'])
    assert.match(check.stdout, new RegExp(`passed for resource ${kind}/causeway`));
});

test('the DaemonSet runs in the host pid namespace with the documented capabilities, mounts and probes', () => {
  const pod = daemonSet();
  const container = pod?.containers[0];
  assert.ok(pod !== undefined && container !== undefined);
  assert.equal(pod.hostPID, true);
  // The grace period is the sidecar's shutdown deadline plus a margin to exit (see the manifest).
  assert.equal(pod.terminationGracePeriodSeconds, Number(causewayConfig()['shutdown-deadline-s']) + 5);
  assert.deepEqual(container.securityContext.capabilities, {
    drop: ['ALL'],
    add: ['BPF', 'PERFMON', 'SYS_ADMIN', 'SYS_PTRACE'],
  });
  const tracefs = pod.volumes.find((v) => v.hostPath?.path === '/sys/kernel/tracing');
  assert.equal(container.volumeMounts.find((m) => m.name === tracefs?.name)?.mountPath, '/sys/kernel/tracing');
  assert.ok(container.livenessProbe !== undefined && container.readinessProbe !== undefined);
  assert.ok(container.resources.requests.memory !== undefined && container.resources.limits.memory !== undefined);
});

test('Causeway reads its config from the ConfigMap and its MCP token from the Secret', () => {
  const pod = daemonSet();
  const container = pod?.containers[0];
  const mountOf = (volume: { name: string } | undefined) =>
    container?.volumeMounts.find((m) => m.name === volume?.name)?.mountPath;
  const config = pod?.volumes.find((v) => v.configMap?.name === 'causeway');
  assert.deepEqual(container?.args, ['run', '--config', `${mountOf(config)}/causeway.yaml`]);
  const token = pod?.volumes.find((v) => v.secret?.secretName === 'causeway-mcp-token');
  assert.equal(causewayConfig()['mcp-token-file'], `${mountOf(token)}/token`);
});

test('every key of the ConfigMap is an option of `causeway run`', () => {
  const help = run(process.execPath, ['dist/src/cli/main.js', 'run', '--help']);
  assert.equal(help.status, 0, output(help));
  const keys = Object.keys(causewayConfig());
  assert.ok(keys.length > 0);
  for (const key of keys) assert.match(help.stdout, new RegExp(`--${key} `), `causeway run has no --${key}`);
});

test('docker compose grants Causeway the same capabilities as the DaemonSet', (t) => {
  if (!installed(t, compose)) return;
  const config = run(compose, ['-f', 'docker/compose.yaml', 'config', '--format', 'json']);
  assert.equal(config.status, 0, output(config));
  const causeway = (
    JSON.parse(config.stdout) as { services: Record<string, { cap_add: string[]; cap_drop: string[] }> }
  ).services.causeway;
  const capabilities = daemonSet()?.containers[0]?.securityContext.capabilities;
  assert.deepEqual({ add: causeway?.cap_add, drop: causeway?.cap_drop }, capabilities);
});

test('the collector snippet merged into otel-config/collector.yaml is a configuration the collector accepts', (t) => {
  if (!installed(t, otelcol)) return;
  const args = ['validate', '--config=otel-config/collector.yaml', '--config=docker/kubernetes/collector-snippet.yaml'];
  const merged = run(otelcol, args, { MY_POD_IP: '127.0.0.1' });
  assert.equal(merged.status, 0, output(merged));
  // And the check is live: the snippet alone lacks the exporter and processors it refers to.
  const alone = run(otelcol, ['validate', '--config=docker/kubernetes/collector-snippet.yaml'], {
    MY_POD_IP: '127.0.0.1',
  });
  assert.notEqual(alone.status, 0);
});
