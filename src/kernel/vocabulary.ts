// The kernel's and CUDA's numeric codes, in the words people read them in (strace, ps, ss).
import {
  CAUSEWAY_BLOCK_OP_VALUE_DISCARD,
  CAUSEWAY_BLOCK_OP_VALUE_FLUSH,
  CAUSEWAY_BLOCK_OP_VALUE_OTHER,
  CAUSEWAY_BLOCK_OP_VALUE_READ,
  CAUSEWAY_BLOCK_OP_VALUE_WRITE,
  CAUSEWAY_CUDA_MEMCPY_DIRECTION_VALUE_DEFAULT,
  CAUSEWAY_CUDA_MEMCPY_DIRECTION_VALUE_DTOD,
  CAUSEWAY_CUDA_MEMCPY_DIRECTION_VALUE_DTOH,
  CAUSEWAY_CUDA_MEMCPY_DIRECTION_VALUE_HTOD,
  CAUSEWAY_CUDA_MEMCPY_DIRECTION_VALUE_HTOH,
  type CausewayBlockOpValue,
  type CausewayCudaMemcpyDirectionValue,
} from '../semconv/attributes.js';
import { MemcpyDirection } from './record.js';

const FUTEX_PRIVATE_FLAG = 128;
const FUTEX_CLOCK_REALTIME = 256;
const FUTEX_COMMANDS = [
  'FUTEX_WAIT',
  'FUTEX_WAKE',
  'FUTEX_FD',
  'FUTEX_REQUEUE',
  'FUTEX_CMP_REQUEUE',
  'FUTEX_WAKE_OP',
  'FUTEX_LOCK_PI',
  'FUTEX_UNLOCK_PI',
  'FUTEX_TRYLOCK_PI',
  'FUTEX_WAIT_BITSET',
  'FUTEX_WAKE_BITSET',
  'FUTEX_WAIT_REQUEUE_PI',
  'FUTEX_CMP_REQUEUE_PI',
  'FUTEX_LOCK_PI2',
];

/** A futex op argument as strace prints it: FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME. */
export function futexOp(op: number): string {
  const command = op & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
  let name = FUTEX_COMMANDS[command] ?? `FUTEX_OP_${command}`;
  if (op & FUTEX_PRIVATE_FLAG) name += '_PRIVATE';
  if (op & FUTEX_CLOCK_REALTIME) name += '|FUTEX_CLOCK_REALTIME';
  return name;
}

// task_struct->__state bits, lowest first, with ps's letters.
const STATE_LETTERS = ['S', 'D', 'T', 't', 'X', 'Z', 'P', 'X'];
const TASK_IDLE = 0x402; // TASK_UNINTERRUPTIBLE | TASK_NOLOAD

/** A task state (prev_state at sched_switch) as ps prints it: R, S, D, I, T, t, X, Z, P. */
export function taskState(state: number): string {
  if ((state & TASK_IDLE) === TASK_IDLE) return 'I';
  for (let bit = 0; bit < STATE_LETTERS.length; bit++) {
    if (state & (1 << bit)) return STATE_LETTERS[bit] ?? '?';
  }
  return state === 0 ? 'R' : `0x${state.toString(16)}`;
}

const TCP_STATES = [
  '',
  'ESTABLISHED',
  'SYN_SENT',
  'SYN_RECV',
  'FIN_WAIT1',
  'FIN_WAIT2',
  'TIME_WAIT',
  'CLOSE',
  'CLOSE_WAIT',
  'LAST_ACK',
  'LISTEN',
  'CLOSING',
  'NEW_SYN_RECV',
  'BOUND_INACTIVE',
];

export function tcpState(state: number): string {
  return TCP_STATES[state] || `STATE_${state}`;
}

/**
 * The operation of a block request from its rwbs flags: a leading F before the op letter
 * is a preflush (so "FWS" is a write), F alone or before other flags is a flush.
 */
export function blockOp(rwbs: string): CausewayBlockOpValue {
  const op = rwbs.length > 1 && rwbs[0] === 'F' && 'WRD'.includes(rwbs[1] ?? '') ? rwbs[1] : rwbs[0];
  switch (op) {
    case 'R':
      return CAUSEWAY_BLOCK_OP_VALUE_READ;
    case 'W':
      return CAUSEWAY_BLOCK_OP_VALUE_WRITE;
    case 'F':
      return CAUSEWAY_BLOCK_OP_VALUE_FLUSH;
    case 'D':
      return CAUSEWAY_BLOCK_OP_VALUE_DISCARD;
    default:
      return CAUSEWAY_BLOCK_OP_VALUE_OTHER;
  }
}

const MEMCPY_DIRECTIONS = new Map<number, CausewayCudaMemcpyDirectionValue>([
  [MemcpyDirection.HTOH, CAUSEWAY_CUDA_MEMCPY_DIRECTION_VALUE_HTOH],
  [MemcpyDirection.HTOD, CAUSEWAY_CUDA_MEMCPY_DIRECTION_VALUE_HTOD],
  [MemcpyDirection.DTOH, CAUSEWAY_CUDA_MEMCPY_DIRECTION_VALUE_DTOH],
  [MemcpyDirection.DTOD, CAUSEWAY_CUDA_MEMCPY_DIRECTION_VALUE_DTOD],
  [MemcpyDirection.DEFAULT, CAUSEWAY_CUDA_MEMCPY_DIRECTION_VALUE_DEFAULT],
]);

/** A cudaMemcpyKind (enum cw_memcpy_direction); anything else is shown as its number rather than guessed. */
export function memcpyDirection(kind: number): string {
  return MEMCPY_DIRECTIONS.get(kind) ?? `kind(${kind})`;
}

const AF_INET = 2;
const AF_INET6 = 10;

/** An address as the tcp tracepoint stores it: IPv4 in the first 4 bytes, or IPv6. */
export function ipAddress(family: number, bytes: Uint8Array): { type: 'ipv4' | 'ipv6'; address: string } | undefined {
  if (family === AF_INET) return { type: 'ipv4', address: Array.from(bytes.subarray(0, 4)).join('.') };
  if (family !== AF_INET6) return undefined;
  const isV4Mapped = bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (isV4Mapped) return { type: 'ipv6', address: `::ffff:${Array.from(bytes.subarray(12, 16)).join('.')}` };
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  return { type: 'ipv6', address: compressIpv6(groups) };
}

/** RFC 5952: the longest run (2 or more) of zero groups becomes "::". */
function compressIpv6(groups: string[]): string {
  let best = { at: -1, length: 0 };
  for (let i = 0; i < groups.length;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - i > best.length) best = { at: i, length: j - i };
    i = j;
  }
  if (best.length < 2) return groups.join(':');
  return `${groups.slice(0, best.at).join(':')}::${groups.slice(best.at + best.length).join(':')}`;
}
