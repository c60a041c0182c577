// Golden files: an answer compared whole against a file reviewed once and kept in the repository.
// To regenerate after an intended change, run the test with UPDATE_GOLDEN=1, e.g.
//   npm run build && UPDATE_GOLDEN=1 node --test dist/test/correlate/explain.test.js
// then read `git diff` on the golden files before committing them: they are the expectation.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: tests run compiled, from dist/test, while golden files live in test/. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Compares `actual`, as JSON, with the golden file at `file` (relative to the repository root). */
export function assertGolden(file: string, actual: unknown): void {
  const path = join(ROOT, file);
  const json = `${JSON.stringify(actual, null, 2)}\n`;
  if (process.env.UPDATE_GOLDEN === '1') {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, json);
    return;
  }
  assert.ok(existsSync(path), `${file} is missing: run this test with UPDATE_GOLDEN=1 to write it, then review it`);
  try {
    // Compared as values, so that the diff below is per field and reformatting the file changes nothing.
    assert.deepEqual(JSON.parse(json), JSON.parse(readFileSync(path, 'utf8')));
  } catch (e) {
    if (e instanceof assert.AssertionError)
      e.message = `${file} differs from this run (+ this run, - golden). If the change is intended, rerun with UPDATE_GOLDEN=1 and review the diff.\n${e.message}`;
    throw e;
  }
}
