// The waits of another process that a request waited on (README, "Requests served by another
// process"). A traced front end hands a request to an engine and waits for the answer; what
// the engine waited on meanwhile (the GPU, I/O, a lock) belongs to the request. Two links:
//  - waker: the request's thread was woken, from a wait, by a thread of another process: that
//    thread's waits during the wait are linked;
//  - connection: on a busy event loop the reply arrives while the loop runs, so there is no
//    wakeup to follow. The request's thread sent on a connection, another process received on
//    it and later replied on it before the request's thread received the reply: that process's
//    waits between its receive and its reply are linked. A pipe is one-way, so over pipes the
//    reply comes on another one: the request's side wrote on pipe P1, the other process read P1,
//    later wrote on pipe P2, and the request's side read P2 after that; the waits of the thread
//    that read P1, between its read and the write, are linked. The request's side on pipes is
//    its thread, or its process where its thread wrote (or read) no pipe: a
//    multiprocessing.Queue's feeder thread writes for it, a reader thread reads for it.
// A linked wait is a copy of the other process's event, owned by the request's thread (so it
// sits among the request's own events in the store and in the exported trace), with the other
// task in causeway.remote.*, the link, and how many requests the one wait served.
import { isPipe, otherTask, type KernelEvent } from '../kernel/events.js';
import * as A from '../semconv/attributes.js';
import { earlier, later } from './time.js';

export type LinkKind = typeof A.CAUSEWAY_LINK_VALUE_WAKER | typeof A.CAUSEWAY_LINK_VALUE_CONNECTION;

/** The events linking reads, as the caller holds them. */
export interface HeldEvents {
  /** Events of `pid` (its thread `tid`, or every thread) overlapping [from, to]. */
  events(pid: number, tid: number | undefined, from: bigint, to: bigint): KernelEvent[];
  /**
   * Of those, the ones that can link a request to another process: its messages, and its waits
   * that a task of another process ended (by pid; none made for the others).
   */
  linking(pid: number, tid: number | undefined, from: bigint, to: bigint): KernelEvent[];
  /** The messages among those of every thread of `pid`: found without reading its threads that sent or received none. */
  processMessages(pid: number, from: bigint, to: bigint): KernelEvent[];
  /** Messages on any of `connections` by processes other than `exceptPid`, in [from, to]. */
  messages(connections: ReadonlySet<string>, exceptPid: number, from: bigint, to: bigint): KernelEvent[];
  /**
   * The requests each wait served (sharedBy), kept with the events: worked out once, as every
   * request it served is joined after the replies were sent (a span ends after its reply), so
   * the first count is the count. By the wait's task, kind and start (waitKey), not its object:
   * a held event is made again each time it is read.
   */
  readonly sharedCounts: Map<string, number>;
}

/** A request: its process and thread (undefined: any thread of the process) over its span. */
export interface Request {
  pid: number;
  tid?: number;
  from: bigint;
  to: bigint;
}

/** How far around a wait the serving process's messages are read to count the requests it served. */
const SHARED_LOOKAROUND_NS = 5_000_000_000n;
/** Waits whose shared counts are kept at most: emptied when full, which can only count one again. */
const SHARED_COUNTS_HELD = 65_536;
/** A held event by what it is, not by its object: its task, kind and start. */
const waitKey = (wait: KernelEvent) =>
  `${String(wait.pid)}/${String(wait.tid)}/${wait.kind}/${String(wait.startUnixNano)}`;

/** Whether an event is a send or receive (ipc.message): it links a request to another process, it is no wait. */
export const isMessage = (e: KernelEvent) => e.kind === A.CAUSEWAY_KIND_VALUE_IPC_MESSAGE;
/** The kinds of a request's own waits whose waker linking follows. */
export const WOKEN_WAITS: ReadonlySet<KernelEvent['kind']> = new Set([
  A.CAUSEWAY_KIND_VALUE_SCHED_BLOCKED,
  A.CAUSEWAY_KIND_VALUE_FUTEX_WAIT,
]);
const isSend = (e: KernelEvent) => e.attributes[A.ATTR_CAUSEWAY_IPC_DIRECTION] === A.CAUSEWAY_IPC_DIRECTION_VALUE_SEND;
const connectionOf = (e: KernelEvent) => String(e.attributes[A.ATTR_CAUSEWAY_IPC_CONNECTION]);
const onPipe = (e: KernelEvent) => isPipe(connectionOf(e));

/** What the serving process did that a request can wait on: GPU waits, I/O and its sleeps, locks. */
function isWait(e: KernelEvent): boolean {
  switch (e.kind) {
    case 'cuda.sync':
    case 'cuda.memcpy':
    case 'cuda.malloc':
    case 'block.io':
    case 'futex.wait':
      return true;
    case 'sched.blocked':
      return e.attributes[A.ATTR_CAUSEWAY_SCHED_STATE] === 'D'; // uninterruptible: I/O, not idling for work
    default:
      return false;
  }
}

/** What a linked copy adds to the other process's event. */
const LINK_KEYS: ReadonlySet<string> = new Set([
  A.ATTR_CAUSEWAY_LINK,
  A.ATTR_CAUSEWAY_REMOTE_PID,
  A.ATTR_CAUSEWAY_REMOTE_TID,
  A.ATTR_CAUSEWAY_REMOTE_COMM,
  A.ATTR_CAUSEWAY_SHARED_COUNT,
]);

/** Whether an event is a linked copy of another process's wait. */
export const isLinked = (e: KernelEvent) => e.attributes[A.ATTR_CAUSEWAY_LINK] !== undefined;

/** A linked copy as the other process saw it: its own pid, tid, comm and attributes. Other events as they are. */
export function asRemote(e: KernelEvent): KernelEvent {
  const pid = e.attributes[A.ATTR_CAUSEWAY_REMOTE_PID];
  const tid = e.attributes[A.ATTR_CAUSEWAY_REMOTE_TID];
  const comm = e.attributes[A.ATTR_CAUSEWAY_REMOTE_COMM];
  if (typeof pid !== 'number' || typeof tid !== 'number') return e;
  const attributes = Object.fromEntries(Object.entries(e.attributes).filter(([key]) => !LINK_KEYS.has(key)));
  return { ...e, pid, tid, comm: typeof comm === 'string' ? comm : e.comm, attributes };
}

/**
 * The requests one wait of `pid` served: its socket connections on which the last message
 * before the wait was a receive and the first after it a send (an exchange open across the
 * wait; requests multiplexed on one connection count once), and its replies on pipes.
 */
function sharedBy(wait: KernelEvent, held: HeldEvents): number {
  const key = waitKey(wait);
  const { sharedCounts } = held;
  const known = sharedCounts.get(key);
  if (known !== undefined) return known;
  const around = held.processMessages(
    wait.pid,
    wait.startUnixNano - SHARED_LOOKAROUND_NS,
    wait.endUnixNano + SHARED_LOOKAROUND_NS,
  );
  const before = new Map<string, KernelEvent>();
  const after = new Map<string, KernelEvent>();
  for (const m of around.filter((m) => !onPipe(m))) {
    const c = connectionOf(m);
    if (m.startUnixNano <= wait.startUnixNano)
      before.set(c, m); // in start order: the last one stays
    else if (m.startUnixNano >= wait.endUnixNano && !after.has(c)) after.set(c, m);
  }
  let open = 0;
  for (const [c, last] of before) {
    const next = after.get(c);
    if (!isSend(last) && next !== undefined && isSend(next)) open++;
  }
  const count = Math.max(1, open + pipeReplies(wait, around, held));
  if (sharedCounts.size >= SHARED_COUNTS_HELD) sharedCounts.clear();
  sharedCounts.set(key, count);
  return count;
}

/**
 * A pipe carries no request boundaries, so the requests a wait served are counted by the
 * replies after it: the process's writes on pipes that another followed process read (a log
 * written to a pipe nobody followed reads is no reply), from its first one after the wait until
 * its thread next waits the same way (the next step: the replies may be written while that
 * thread already reads the next requests), or, with no next step, until that thread next reads
 * a pipe (a write after that answers what it read then).
 */
function pipeReplies(wait: KernelEvent, around: KernelEvent[], held: HeldEvents): number {
  const writes = around.filter((m) => onPipe(m) && isSend(m) && m.startUnixNano >= wait.endUnixNano);
  const first = writes[0];
  if (first === undefined) return 0;
  const end = wait.endUnixNano + SHARED_LOOKAROUND_NS;
  const after = held
    .events(wait.pid, wait.tid, first.startUnixNano, end)
    .filter((e) => e.startUnixNano > first.startUnixNano);
  const until =
    after.find((e) => e.kind === wait.kind)?.startUnixNano ??
    after.find((e) => isMessage(e) && onPipe(e) && !isSend(e))?.startUnixNano ??
    end;
  const replies = writes.filter((m) => m.startUnixNano < until);
  const read = new Set(
    held
      .messages(new Set(replies.map(connectionOf)), wait.pid, first.startUnixNano, end)
      .filter((m) => !isSend(m))
      .map(connectionOf),
  );
  return replies.filter((m) => read.has(connectionOf(m))).length;
}

/** An exchange: the request's send, and the process that received it and replied. */
interface Exchange {
  send: KernelEvent;
  pid: number;
  /** The threads whose waits served it. */
  tids: Set<number>;
  /** Its receive to its reply. */
  from: bigint;
  to: bigint;
}

/** The exchanges a request had with other processes on socket connections, from its thread's messages. */
function socketExchanges(request: Request, own: KernelEvent[], held: HeldEvents): Exchange[] {
  const sockets = own.filter((m) => !onPipe(m));
  if (sockets.length === 0) return [];
  const firstSend = new Map<string, KernelEvent>();
  const lastRecv = new Map<string, KernelEvent>();
  for (const m of sockets) {
    const c = connectionOf(m);
    if (isSend(m)) {
      if (!firstSend.has(c)) firstSend.set(c, m);
    } else if (firstSend.has(c)) lastRecv.set(c, m);
  }
  const replied = [...lastRecv.keys()];
  if (replied.length === 0) return [];
  // Every connection's messages at once, then each connection's within its own exchange.
  const theirs = held.messages(new Set(replied), request.pid, request.from, request.to);
  const found: Exchange[] = [];
  for (const c of replied) {
    const send = firstSend.get(c);
    const reply = lastRecv.get(c);
    if (send === undefined || reply === undefined) continue;
    const during = theirs.filter(
      (m) => connectionOf(m) === c && m.startUnixNano >= send.startUnixNano && m.startUnixNano <= reply.startUnixNano,
    );
    const received = during.find((m) => !isSend(m));
    const answered = during.filter((m) => isSend(m) && m.pid === received?.pid).at(-1);
    if (received === undefined || answered === undefined) continue;
    found.push({
      send,
      pid: received.pid,
      tids: new Set([received.tid, answered.tid]),
      from: received.startUnixNano,
      to: answered.startUnixNano,
    });
  }
  return found;
}

/**
 * The request's side of its pipes, in one direction: its thread's messages, or its process's
 * where its thread had none (another of its threads wrote or read for it).
 */
function side(request: Request, own: KernelEvent[], held: HeldEvents, send: boolean): KernelEvent[] {
  const ofThread = own.filter((m) => onPipe(m) && isSend(m) === send);
  if (ofThread.length > 0 || request.tid === undefined) return ofThread;
  return held.processMessages(request.pid, request.from, request.to).filter((m) => onPipe(m) && isSend(m) === send);
}

/**
 * The exchanges a request had over pipes: its side wrote on P1, a process read P1 and later
 * wrote on another pipe P2 that its side read after that. The waits linked are those of the
 * thread that read P1: the reply's writer may be a relay (a queue's feeder thread, idle until
 * handed the reply), not the thread that did the work.
 */
function pipeExchanges(request: Request, own: KernelEvent[], held: HeldEvents): Exchange[] {
  const writes = side(request, own, held, true);
  if (writes.length === 0) return [];
  const firstWrite = new Map<string, KernelEvent>();
  for (const m of writes) if (!firstWrite.has(connectionOf(m))) firstWrite.set(connectionOf(m), m);
  const lastRead = new Map<string, KernelEvent>();
  for (const m of side(request, own, held, false)) lastRead.set(connectionOf(m), m); // in start order: the last stays
  if (lastRead.size === 0) return [];
  const theirs = held.messages(
    new Set([...firstWrite.keys(), ...lastRead.keys()]),
    request.pid,
    request.from,
    request.to,
  );
  const found: Exchange[] = [];
  for (const [p1, send] of firstWrite) {
    const readers = new Map<number, KernelEvent>(); // each process's first read of P1 after the send
    for (const m of theirs)
      if (connectionOf(m) === p1 && !isSend(m) && m.startUnixNano >= send.startUnixNano && !readers.has(m.pid))
        readers.set(m.pid, m);
    for (const [pid, received] of readers) {
      const answered = theirs
        .filter((m) => {
          const reply = lastRead.get(connectionOf(m));
          return (
            m.pid === pid &&
            isSend(m) &&
            connectionOf(m) !== p1 &&
            reply !== undefined &&
            m.startUnixNano >= received.startUnixNano &&
            m.startUnixNano <= reply.startUnixNano
          );
        })
        .at(-1);
      if (answered === undefined) continue;
      found.push({
        send,
        pid,
        tids: new Set([received.tid]),
        from: received.startUnixNano,
        to: answered.startUnixNano,
      });
    }
  }
  return found;
}

/** Links the other processes' waits that `request` waited on; the copies are the request thread's events. */
export function linkedWaits(request: Request, held: HeldEvents): KernelEvent[] {
  // What links: the request's messages, and its waits another task ended (not every event it holds).
  const own = held.linking(request.pid, request.tid, request.from, request.to);
  const messages = own.filter(isMessage);
  const exchanges = [...socketExchanges(request, messages, held), ...pipeExchanges(request, messages, held)];
  // Most requests have neither: nothing more is made for them (issue 11).
  if (exchanges.length === 0 && messages.length === own.length) return [];
  type Owner = Pick<KernelEvent, 'pid' | 'tid' | 'comm'>;
  // By waitKey: a held event read twice (two exchanges with one thread) is two objects.
  const links = new Map<string, { event: KernelEvent; kind: LinkKind; owner: Owner }>();
  let comm: string | undefined;
  /** The request thread's name, from any event of it (the first that needs it reads them). */
  const threadComm = () => (comm ??= held.events(request.pid, request.tid, request.from, request.to)[0]?.comm);
  /** The request's thread, also where another of its threads wrote or read a pipe for it. */
  const ownerOf = (m: KernelEvent): Owner =>
    request.tid === undefined || m.tid === request.tid
      ? m
      : { pid: request.pid, tid: request.tid, comm: threadComm() ?? m.comm };
  /** Links the waits among `candidates` that overlap [from, to] within the request. */
  const add = (candidates: KernelEvent[], from: bigint, to: bigint, kind: LinkKind, owner: Owner) => {
    const [start, end] = [later(from, request.from), earlier(to, request.to)];
    for (const e of candidates) {
      if (!isWait(e) || e.startUnixNano >= end || e.endUnixNano <= start) continue;
      const key = waitKey(e);
      if (!links.has(key)) links.set(key, { event: e, kind, owner });
    }
  };
  for (const x of exchanges)
    for (const tid of x.tids)
      add(held.events(x.pid, tid, x.from, x.to), x.from, x.to, A.CAUSEWAY_LINK_VALUE_CONNECTION, ownerOf(x.send));
  // Its waits among them are those a task of another process ended (HeldEvents.linking).
  for (const wait of own) {
    if (isMessage(wait)) continue;
    const waker = otherTask(wait);
    if (waker?.tid === undefined) continue;
    add(
      held.events(waker.pid, waker.tid, wait.startUnixNano, wait.endUnixNano),
      wait.startUnixNano,
      wait.endUnixNano,
      A.CAUSEWAY_LINK_VALUE_WAKER,
      wait,
    );
  }
  return [...links.values()].map(({ event: e, kind, owner }) => ({
    ...e,
    kind: e.kind,
    pid: owner.pid,
    tid: owner.tid,
    comm: owner.comm,
    startUnixNano: later(e.startUnixNano, request.from),
    endUnixNano: earlier(e.endUnixNano, request.to),
    attributes: {
      ...e.attributes,
      [A.ATTR_CAUSEWAY_LINK]: kind,
      [A.ATTR_CAUSEWAY_REMOTE_PID]: e.pid,
      [A.ATTR_CAUSEWAY_REMOTE_TID]: e.tid,
      [A.ATTR_CAUSEWAY_REMOTE_COMM]: e.comm,
      [A.ATTR_CAUSEWAY_SHARED_COUNT]: sharedBy(e, held),
    },
  }));
}
