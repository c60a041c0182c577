import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SymbolResolver, definesFunction } from '../../src/kernel/symbols.js';

// A PIE program that prints where two of its functions were loaded, then waits.
const SOURCE = `
#include <stdio.h>
#include <unistd.h>
namespace ml { __attribute__((noinline)) void matmul(float *a, int n) { a[n] = 0; } }
extern "C" __attribute__((noinline)) void vector_add(void) { puts(""); }
extern "C" void cudaLaunchKernel(void) {}
int main() {
  printf("%p %p\\n", (void *)&ml::matmul, (void *)((char *)&vector_add + 1));
  fflush(stdout);
  pause();
}
`;

function build(): string {
  const dir = mkdtempSync(join(tmpdir(), 'causeway-symbols-'));
  writeFileSync(join(dir, 'target.cc'), SOURCE);
  execFileSync('g++', ['-O1', '-pie', '-fPIE', '-o', join(dir, 'target'), join(dir, 'target.cc')]);
  return join(dir, 'target');
}

test('a function address in a running PIE resolves to its symbol, mangled or not', async () => {
  const target = build();
  const child = spawn(target, [], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const [line] = (await once(child.stdout, 'data')) as [Buffer];
    const [matmul, insideVectorAdd] = line
      .toString()
      .trim()
      .split(' ')
      .map((hex) => BigInt(hex));
    const resolver = new SymbolResolver();
    assert.equal(resolver.resolve(child.pid ?? 0, matmul ?? 0n), '_ZN2ml6matmulEPfi');
    assert.equal(resolver.resolve(child.pid ?? 0, insideVectorAdd ?? 0n), 'vector_add');
    assert.equal(resolver.resolve(child.pid ?? 0, 0x10n), undefined, 'an unmapped address');
  } finally {
    child.kill();
  }
});

test('an exited process resolves nothing', () => {
  assert.equal(new SymbolResolver().resolve(0x3fffffff, 0x401000n), undefined);
});

test('an executable defining cudaLaunchKernel is recognised', () => {
  const target = build();
  assert.equal(definesFunction(target, 'cudaLaunchKernel'), true);
  assert.equal(definesFunction(target, 'cudaLaunch'), false);
  assert.equal(definesFunction('/bin/true', 'cudaLaunchKernel'), false);
});
