// Starting the sidecar's parts in order. When a step fails, the parts already started are
// closed in reverse order and the error names the step that failed; shutting down closes
// them the same way, so a part is always closed after the parts that feed it.

/** Why a start step failed: a port already taken reads as such, anything else as its message. */
function reason(error: unknown): string {
  const e = error as NodeJS.ErrnoException & { address?: string; port?: number };
  if (e instanceof Error && e.syscall === 'listen')
    return `cannot listen on ${String(e.address)}:${String(e.port)}: ${e.code === 'EADDRINUSE' ? 'the address is in use' : e.message}`;
  return error instanceof Error ? error.message : String(error);
}

export class StartError extends Error {
  override name = 'StartError';

  constructor(
    /** The part that failed to start, as a person names it ("the MCP server"). */
    readonly step: string,
    cause: unknown,
  ) {
    super(`cannot start ${step}: ${reason(cause)}`, { cause });
  }
}

export class Startup {
  private readonly started: { step: string; close: () => unknown }[] = [];
  private shuttingDown: Promise<void> | undefined;
  /** The part being closed, while shutdown() runs. */
  closing: string | undefined;

  /** `log` hears about a part that failed to close (the others are closed all the same). */
  constructor(private readonly log: (line: string) => void) {}

  /** Starts a part; if that fails, closes those started and throws a StartError naming the step. */
  async step<T>(step: string, start: () => T | Promise<T>, close: (part: T) => unknown): Promise<T> {
    let part: T;
    try {
      part = await start();
    } catch (error) {
      await this.shutdown();
      throw new StartError(step, error);
    }
    this.started.push({ step, close: () => close(part) });
    return part;
  }

  /** Closes every part started, the last first. Idempotent. */
  shutdown(): Promise<void> {
    this.shuttingDown ??= (async () => {
      for (const { step, close } of this.started.reverse()) {
        this.closing = step;
        try {
          await close();
        } catch (error) {
          this.log(`closing ${step} failed: ${reason(error)}`);
        }
      }
      this.closing = undefined;
    })();
    return this.shuttingDown;
  }
}
