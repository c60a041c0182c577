import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { definesFunction } from '../../src/kernel/symbols.js';

// A program that defines the runtime's launch function, as one linking it statically does.
const SOURCE = `
extern "C" void cudaLaunchKernel(void) {}
int main() { cudaLaunchKernel(); }
`;

const dir = mkdtempSync(join(tmpdir(), 'causeway-symbols-'));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function build(): string {
  writeFileSync(join(dir, 'target.cc'), SOURCE);
  execFileSync('g++', ['-O1', '-pie', '-fPIE', '-o', join(dir, 'target'), join(dir, 'target.cc')]);
  return join(dir, 'target');
}

test('an executable defining cudaLaunchKernel is recognised', () => {
  const target = build();
  assert.equal(definesFunction(target, 'cudaLaunchKernel'), true);
  assert.equal(definesFunction(target, 'cudaLaunch'), false);
  assert.equal(definesFunction('/bin/true', 'cudaLaunchKernel'), false);
});
