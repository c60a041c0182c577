import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Demangler } from '../../src/kernel/demangle.js';

test('C++ names are demangled by c++filt and cached; plain names pass through', async () => {
  const errors: string[] = [];
  const demangler = new Demangler((message) => errors.push(message));
  try {
    assert.equal(demangler.cached('_ZN5torch6kernelEv'), undefined);
    await demangler.demangleAll(['_ZN5torch6kernelEv', '_Z6matmulPKfPfi', '_ZN5torch6kernelEv']);
    assert.equal(demangler.cached('_ZN5torch6kernelEv'), 'torch::kernel()');
    assert.equal(await demangler.demangle('_Z6matmulPKfPfi'), 'matmul(float const*, float*, int)');
    assert.equal(await demangler.demangle('vector_add'), 'vector_add');
    assert.equal(await demangler.demangle('_Znot_a_valid_mangling'), '_Znot_a_valid_mangling');
    assert.deepEqual(errors, []);
  } finally {
    demangler.close();
  }
});

test('without c++filt, the reason is reported once and names stay mangled', async () => {
  const path = process.env.PATH;
  process.env.PATH = '/nonexistent';
  const errors: string[] = [];
  const demangler = new Demangler((message) => errors.push(message));
  try {
    assert.deepEqual(await Promise.all([demangler.demangle('_Z1fv'), demangler.demangle('_Z1gv')]), ['_Z1fv', '_Z1gv']);
    assert.equal(await demangler.demangle('_Z1hv'), '_Z1hv');
  } finally {
    process.env.PATH = path;
    demangler.close();
  }
  assert.equal(errors.length, 1);
  assert.match(errors[0] ?? '', /cannot run c\+\+filt \(install binutils\)/);
});

test('a bounded cache forgets the least recently used names', async () => {
  const demangler = new Demangler(() => undefined, 2);
  try {
    await demangler.demangleAll(['_Z1av', '_Z1bv', '_Z1cv']);
    assert.equal(demangler.cached('_Z1av'), undefined);
    assert.equal(demangler.cached('_Z1cv'), 'c()');
  } finally {
    demangler.close();
  }
});
