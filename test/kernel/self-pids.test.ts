import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SelfPids } from '../../src/kernel/self-pids.js';

test("Causeway's own pids are this process and its latest seven loaders", () => {
  const self = new SelfPids(100);
  assert.ok(self.has(100));
  assert.ok(!self.has(200));
  for (let loader = 201; loader <= 208; loader++) self.addLoader(loader);
  assert.ok(!self.has(201), 'the oldest loader is forgotten');
  for (let loader = 202; loader <= 208; loader++) assert.ok(self.has(loader), `loader ${loader}`);
  assert.ok(self.has(100), 'this process is never forgotten');
  self.addLoader(208);
  assert.ok(self.has(202), 'a loader seen again does not push another out');
});
