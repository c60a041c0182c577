#!/usr/bin/env node
// The `causeway` command: dispatches to a subcommand.
import { readFileSync } from 'node:fs';
import { packageRoot } from '../install.js';
import { ConfigError } from '../sidecar/config.js';
import { UsageError } from './usage.js';

const HELP = `Usage: causeway <command> [options]

Shows why requests were slow when the cause is below the application: GPU syncs,
CPU run-queue waits, locks, block I/O and TCP retransmits, captured with eBPF.

Commands:
  doctor    check that this machine can capture (privileges, BTF, tracefs, ...)
  capture   print kernel events as they happen (a table, or JSON lines with --json)
  demo      capture workloads on the simulated GPU and print what the kernel saw
  run       the sidecar: app spans in over OTLP, their kernel events out as child spans,
            and the MCP server (HTTP) that explains slow traces
  mcp       the MCP server over stdio for agent clients, answering from the running sidecar
  help      this help, or a command's: causeway help <command>

Run \`causeway <command> --help\` for a command's options.
`;

interface Command {
  help: string;
  run: (argv: string[]) => number | Promise<number>;
}

/**
 * Each command's module, loaded only when it is asked for: `causeway run` does not load the
 * MCP client's code (`mcp`, `demo`), nor the MCP server's, which runs in a thread of its own.
 */
const COMMANDS: Record<string, () => Promise<Command>> = {
  doctor: async () => {
    const { DOCTOR_HELP, doctor } = await import('./doctor.js');
    return { help: DOCTOR_HELP, run: doctor };
  },
  capture: async () => {
    const { CAPTURE_HELP, capture } = await import('./capture.js');
    return { help: CAPTURE_HELP, run: capture };
  },
  demo: async () => {
    const { DEMO_HELP, demo } = await import('./demo.js');
    return { help: DEMO_HELP, run: demo };
  },
  run: async () => {
    const { RUN_HELP, run } = await import('./run.js');
    return { help: RUN_HELP, run };
  },
  mcp: async () => {
    const { MCP_HELP, mcp } = await import('./mcp.js');
    return { help: MCP_HELP, run: mcp };
  },
};

function version(): string {
  return (JSON.parse(readFileSync(`${packageRoot}package.json`, 'utf8')) as { version: string }).version;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    process.stdout.write(HELP);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  if (name === 'help') {
    const topic = rest[0] === undefined ? undefined : COMMANDS[rest[0]];
    if (rest[0] !== undefined && topic === undefined) throw new UsageError(`no command ${JSON.stringify(rest[0])}`);
    process.stdout.write((await topic?.())?.help ?? HELP);
    return 0;
  }
  const command = COMMANDS[name];
  if (command === undefined)
    throw new UsageError(`no command ${JSON.stringify(name)}; commands: ${Object.keys(COMMANDS).join(', ')}`);
  return (await command()).run(rest);
}

function isUsageError(error: unknown): error is Error {
  // parseArgs reports unknown options and missing values with ERR_PARSE_ARGS_* codes.
  return (
    error instanceof UsageError ||
    error instanceof ConfigError ||
    (error instanceof Error && String((error as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS'))
  );
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  if (!isUsageError(error)) throw error;
  const command =
    process.argv[2] !== undefined && process.argv[2] in COMMANDS ? `causeway ${process.argv[2]}` : 'causeway';
  process.stderr.write(`${command}: ${error.message}\nRun \`${command} --help\` for usage.\n`);
  process.exitCode = 2;
}
