// For the thread-context writers' tests (the Python and the Node one): a writer app under test,
// stopped where a reader must find a given span, and its record read from outside the process the
// way Causeway's probes read it: the thread pointer plus the TP offset that the library's GOT holds
// for otel_thread_ctx_v1 (initial-exec TLS), then the record it points to, from /proc/PID/mem.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';

const RECORD_BYTES = 28;

/** Where an app stopped: the span it says must be published there, on the thread `pthread`. */
export interface Stop {
  stop: string;
  trace_id: string;
  span_id: string;
  tid: number;
  pthread: string;
}

export interface Published {
  traceId: string;
  spanId: string;
  valid: number;
  attrsDataSize: number;
}

/** The GOT offset of the library's TPOFF relocation for otel_thread_ctx_v1, checking what a
 * reader relies on: a TLS symbol of default visibility in .dynsym, and static (initial-exec) TLS. */
function tpoffGotOffset(library: string): number {
  const dynsym = execFileSync('readelf', ['--dyn-syms', '-W', library], { encoding: 'utf8' });
  assert.match(dynsym, /\s8 TLS\s+GLOBAL DEFAULT\s+\d+ otel_thread_ctx_v1$/m);
  assert.match(execFileSync('readelf', ['-d', library], { encoding: 'utf8' }), /\(FLAGS\)\s+STATIC_TLS/);
  const relocations = execFileSync('readelf', ['-rW', library], { encoding: 'utf8' });
  const got = /^([0-9a-f]+)\s+\S+\s+R_X86_64_TPOFF64\s+\S+\s+otel_thread_ctx_v1 \+ 0$/m.exec(relocations)?.[1];
  assert.ok(got, `no TPOFF64 relocation for otel_thread_ctx_v1:\n${relocations}`);
  return Number.parseInt(got, 16);
}

/** Where the library is loaded in the process (its mapping at file offset 0). */
function libraryBase(pid: number, library: string): bigint {
  const line = readFileSync(`/proc/${pid}/maps`, 'utf8')
    .split('\n')
    .find((l) => l.endsWith(library) && l.split(/\s+/)[2] === '00000000');
  assert.ok(line, `the library is not mapped in ${pid}`);
  return BigInt(`0x${line.slice(0, line.indexOf('-'))}`);
}

/** The record published for the thread whose thread pointer is `pthread`, or null (no context). */
export async function readRecord(pid: number, library: string, pthread: string): Promise<Published | null> {
  const mem = await open(`/proc/${pid}/mem`, 'r');
  try {
    const read = async (at: bigint, length: number) => {
      // A bigint position fails with EIO (Node 20); user addresses fit in 47 bits.
      const { buffer, bytesRead } = await mem.read({ buffer: Buffer.alloc(length), position: Number(at) });
      assert.equal(bytesRead, length, `short read at 0x${at.toString(16)}`);
      return buffer;
    };
    const tpoff = (await read(libraryBase(pid, library) + BigInt(tpoffGotOffset(library)), 8)).readBigInt64LE();
    assert.ok(tpoff < 0n, `initial-exec TLS lies below the thread pointer on x86-64, not at ${tpoff}`);
    const record = (await read(BigInt(`0x${pthread}`) + tpoff, 8)).readBigUInt64LE();
    if (record === 0n) return null;
    const raw = await read(record, RECORD_BYTES);
    return {
      traceId: raw.subarray(0, 16).toString('hex'),
      spanId: raw.subarray(16, 24).toString('hex'),
      valid: raw.readUInt8(24),
      attrsDataSize: raw.readUInt16LE(26),
    };
  } finally {
    await mem.close();
  }
}

export function assertPublishes(published: Published | null, stop: Stop): void {
  assert.deepEqual(published, { traceId: stop.trace_id, spanId: stop.span_id, valid: 1, attrsDataSize: 0 }, stop.stop);
}

/** The app (`command` `args`), its JSON lines in order, and a way to let its stopped thread(s) go on (a line on stdin). */
export function startWriterApp(command: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  const child: ChildProcessWithoutNullStreams = spawn(command, args, { env });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (child.pid === undefined) throw new Error(`${command} did not start`);
  return {
    pid: child.pid,
    stderr: () => stderr,
    async next(): Promise<Record<string, unknown>> {
      const line = await lines.next();
      if (line.done) throw new Error(`the app exited before its next line; stderr:\n${stderr}`);
      return JSON.parse(line.value) as Record<string, unknown>;
    },
    release: () => child.stdin.write('\n'),
    exited,
    kill: () => child.kill('SIGKILL'),
  };
}

/** GET /a of the app on `port`, then /b once A has started; their answers come once the app lets them. */
export async function requestsAandB(
  app: ReturnType<typeof startWriterApp>,
  port: number,
): Promise<{ answers: Promise<string[]> }> {
  const a = fetch(`http://127.0.0.1:${String(port)}/a`).then((r) => r.text());
  assert.deepEqual(await app.next(), { started: 'a' });
  const b = fetch(`http://127.0.0.1:${String(port)}/b`).then((r) => r.text());
  return { answers: Promise.all([a, b]) };
}

/**
 * Requests A and B on the app's loop, each stopped where it runs: at A's stop (A blocks the loop
 * while B, started after it, waits) A's span is published, at B's B's, both on the loop thread.
 * Returns A's stop.
 */
export async function assertLoopPublishesEachRequest(
  app: ReturnType<typeof startWriterApp>,
  readPublished: (pid: number, pthread: string) => Promise<Published | null>,
): Promise<Stop> {
  const { port } = (await app.next()) as { port: number };
  const { answers } = await requestsAandB(app, port);
  const stopA = (await app.next()) as unknown as Stop;
  assert.equal(stopA.stop, 'a');
  assertPublishes(await readPublished(app.pid, stopA.pthread), stopA);
  app.release();

  const stopB = (await app.next()) as unknown as Stop;
  assert.equal(stopB.stop, 'b');
  assert.equal(stopB.tid, stopA.tid, 'both requests ran on the loop thread');
  assert.notEqual(stopB.trace_id, stopA.trace_id, 'each request has a trace of its own');
  assertPublishes(await readPublished(app.pid, stopB.pthread), stopB);
  app.release();

  assert.deepEqual(await answers, ['a', 'b']);
  return stopA;
}
