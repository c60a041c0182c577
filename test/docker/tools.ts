// What the deployment tests share: the tools test/setup.sh installs into its cache (hadolint,
// the Compose CLI, kubernetes-validate, promtool, otelcol, podman), and the rule that a test
// whose tool is missing fails in CI instead of skipping.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { ROOT, runnable } from '../bpf/session.js';

export { ROOT };

const CACHE = '/var/cache/causeway';
const VENV = join(CACHE, 'deploy-venv', 'bin');

export const hadolint = join(VENV, 'hadolint');
export const compose = join(VENV, 'docker-compose');
export const kubernetesValidate = join(VENV, 'kubernetes-validate');
export const promtool = join(CACHE, 'bin', 'promtool');
export const otelcol = join(CACHE, 'bin', 'otelcol');
export const podman = '/usr/bin/podman';

/** True when every tool is installed; outside CI the test skips with the reason, in CI it fails. */
export function installed(t: TestContext, ...tools: string[]): boolean {
  const missing = tools.filter((tool) => !existsSync(tool));
  return runnable(t, 'deployment', missing, ' (bash test/setup.sh installs them)');
}

export interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a tool to completion from the repository root; `env` is added to this process's. */
export function run(tool: string, args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): Ran {
  const ran = spawnSync(tool, args, {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (ran.error !== undefined) throw ran.error;
  return { status: ran.status, stdout: ran.stdout, stderr: ran.stderr };
}

/** The output of a failed run, for an assertion message. */
export const output = (ran: Ran) => `exit ${ran.status}\n${ran.stdout}${ran.stderr}`;
