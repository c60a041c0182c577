// docker/Dockerfile against hadolint, the Dockerfile linter.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hadolint, installed, output, run } from './tools.js';

test('hadolint finds nothing to report in docker/Dockerfile', (t) => {
  if (!installed(t, hadolint)) return;
  const lint = run(hadolint, ['docker/Dockerfile']);
  assert.equal(lint.status, 0, output(lint));
  assert.equal(lint.stdout + lint.stderr, '');
});
