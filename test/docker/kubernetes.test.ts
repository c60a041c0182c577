// docker/kubernetes: the manifests validated offline against Kubernetes' schemas, the pieces
// that must agree with each other checked, and the collector snippet validated by the real
// collector merged into otel-config/collector.yaml.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse } from 'yaml';
import { LOADER_FILE_CAPABILITIES } from '../../src/cli/doctor.js';
import { MANIFESTS, daemonSet, resources } from './manifests.js';
import { compose, installed, kubernetesValidate, otelcol, output, run } from './tools.js';

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
    add: ['BPF', 'PERFMON', 'SYS_ADMIN', 'SYS_PTRACE', 'DAC_READ_SEARCH'],
  });
  const tracefs = pod.volumes.find((v) => v.hostPath?.path === '/sys/kernel/tracing');
  assert.equal(container.volumeMounts.find((m) => m.name === tracefs?.name)?.mountPath, '/sys/kernel/tracing');
  assert.ok(container.livenessProbe !== undefined && container.readinessProbe !== undefined);
  assert.ok(container.resources.requests.memory !== undefined && container.resources.limits.memory !== undefined);
});

test('the DaemonSet runs Causeway as the image user, without no_new_privs, which would withhold the loader its file capabilities', () => {
  const container = daemonSet()?.containers[0];
  assert.ok(container !== undefined);
  const { runAsUser, runAsGroup, runAsNonRoot, allowPrivilegeEscalation } = container.securityContext;
  assert.deepEqual(
    { runAsUser, runAsGroup, runAsNonRoot },
    { runAsUser: 10001, runAsGroup: 10001, runAsNonRoot: true },
  );
  // Unset would do too (it defaults to true); false is what must not be there.
  assert.equal(allowPrivilegeEscalation, true);
  // The kernel's capability names for LOADER_FILE_CAPABILITIES.
  assert.deepEqual(
    [...container.securityContext.capabilities.add].sort(),
    LOADER_FILE_CAPABILITIES.map((cap) => cap.replace(/^cap_/, '').toUpperCase()).sort(),
  );
});

test('an init container gives the store hostPath to the image user, as root with CHOWN and DAC_READ_SEARCH only', () => {
  const pod = daemonSet();
  const store = pod?.volumes.find((v) => v.hostPath?.path === '/var/lib/causeway');
  const init = pod?.initContainers.find((c) => c.volumeMounts.some((m) => m.name === store?.name));
  assert.ok(init !== undefined && store !== undefined);
  assert.equal(init.image, pod?.containers[0]?.image);
  assert.deepEqual(init.command, ['chown', '-R', '10001:10001', '/var/lib/causeway']);
  assert.equal(init.volumeMounts.find((m) => m.name === store.name)?.mountPath, '/var/lib/causeway');
  assert.deepEqual(init.securityContext, {
    runAsUser: 0,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'], add: ['CHOWN', 'DAC_READ_SEARCH'] },
  });
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

test('docker compose runs Causeway as the same user with the same capabilities as the DaemonSet', (t) => {
  if (!installed(t, compose)) return;
  const config = run(compose, ['-f', 'docker/compose.yaml', 'config', '--format', 'json']);
  assert.equal(config.status, 0, output(config));
  const causeway = (
    JSON.parse(config.stdout) as {
      services: Record<string, { cap_add: string[]; cap_drop: string[]; user: string; security_opt: string[] }>;
    }
  ).services.causeway;
  const securityContext = daemonSet()?.containers[0]?.securityContext;
  assert.ok(causeway !== undefined && securityContext !== undefined);
  assert.deepEqual({ add: causeway.cap_add, drop: causeway.cap_drop }, securityContext.capabilities);
  assert.equal(causeway.user, `${securityContext.runAsUser}:${securityContext.runAsGroup}`);
  // no_new_privs would withhold the loader its file capabilities.
  assert.ok(
    !causeway.security_opt.some((option) => option.startsWith('no-new-privileges')),
    causeway.security_opt.join(),
  );
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
