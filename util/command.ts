// A command tree like Docker's: `shoal node ls`, each level with its own help. The help text is
// generated from the same specs the parser uses, so the CLI reference cannot drift from the code.
import { formatFlags, parseFlags, UsageError, type FlagSpec, type FlagValues } from './flags.js';

export interface CommandContext {
  args: string[];
  flags: FlagValues;
  /** Flags of the root command (host, tls, ...), shared by every subcommand. */
  global: FlagValues;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

export interface Command {
  name: string;
  aliases?: string[];
  summary: string;
  /** Positional part of the usage line, e.g. `[OPTIONS] NODE [NODE...]`. */
  usage?: string;
  flags?: FlagSpec[];
  /** Leave everything after the first positional argument unparsed (exec, lab exec). */
  passThrough?: boolean;
  minArgs?: number;
  maxArgs?: number;
  subcommands?: Command[];
  run?: (ctx: CommandContext) => Promise<number | void> | number | void;
}

const helpFlag: FlagSpec = { name: 'help', kind: 'bool', description: 'Print usage' };

export function helpText(cmd: Command, path: string[]): string {
  const full = path.join(' ');
  const lines: string[] = [];
  if (cmd.subcommands?.length) {
    lines.push(`Usage:  ${full} COMMAND`, '', cmd.summary, '');
    lines.push('Commands:');
    const width = Math.max(...cmd.subcommands.map((c) => c.name.length));
    for (const c of cmd.subcommands) lines.push(`  ${c.name.padEnd(width)}   ${c.summary}`);
  } else {
    lines.push(`Usage:  ${full}${cmd.usage ? ' ' + cmd.usage : ''}`, '', cmd.summary);
  }
  const flags = [...(cmd.flags ?? []), helpFlag];
  lines.push('', 'Options:', formatFlags(flags));
  if (cmd.subcommands?.length) lines.push('', `Run '${full} COMMAND --help' for more information on a command.`);
  return lines.join('\n') + '\n';
}

/**
 * Walks argv down the tree and runs the command it names. Returns the exit code; user errors print
 * one line (and a hint at --help) instead of a stack trace.
 */
export async function runCommand(root: Command, argv: string[], io: { out: NodeJS.WritableStream; err: NodeJS.WritableStream }): Promise<number> {
  let cmd = root;
  const path = [root.name];
  let rest = argv;
  let global: FlagValues = {};
  try {
    for (;;) {
      const parsed = parseFlags(rest, [...(cmd.flags ?? []), helpFlag], true);
      if (cmd === root) global = parsed.flags;
      if (parsed.flags.help) {
        io.out.write(helpText(cmd, path));
        return 0;
      }
      if (!cmd.subcommands?.length) break;
      const name = parsed.args[0];
      if (name === undefined) {
        if (cmd.run) break;
        io.out.write(helpText(cmd, path));
        return cmd === root ? 0 : 1;
      }
      const next = cmd.subcommands.find((c) => c.name === name || c.aliases?.includes(name));
      if (!next) throw new UsageError(`'${name}' is not a ${path.join(' ')} command.\nSee '${path.join(' ')} --help'`);
      // Flags given before the subcommand belong to this level; re-parse the rest at the next one.
      rest = parsed.args.slice(1);
      cmd = next;
      path.push(next.name);
    }
    const parsed = parseFlags(rest, [...(cmd.flags ?? []), helpFlag], cmd.passThrough ?? false);
    if (parsed.flags.help) {
      io.out.write(helpText(cmd, path));
      return 0;
    }
    const n = parsed.args.length;
    if ((cmd.minArgs !== undefined && n < cmd.minArgs) || (cmd.maxArgs !== undefined && n > cmd.maxArgs)) {
      const want = cmd.minArgs === cmd.maxArgs ? `exactly ${cmd.minArgs}` : cmd.maxArgs === undefined ? `at least ${cmd.minArgs}` : `at most ${cmd.maxArgs}`;
      throw new UsageError(`"${path.join(' ')}" requires ${want} argument${(cmd.minArgs ?? cmd.maxArgs) === 1 ? '' : 's'}.\nSee '${path.join(' ')} --help'.\n\nUsage:  ${path.join(' ')}${cmd.usage ? ' ' + cmd.usage : ''}`);
    }
    if (!cmd.run) {
      io.out.write(helpText(cmd, path));
      return 1;
    }
    const code = await cmd.run({ args: parsed.args, flags: parsed.flags, global, out: io.out, err: io.err });
    return code ?? 0;
  } catch (e) {
    if (e instanceof UsageError || (e instanceof Error && (e as { userError?: boolean }).userError)) {
      io.err.write(`Error: ${e.message}\n`);
      return e instanceof UsageError ? 2 : 1;
    }
    throw e;
  }
}

/** An error meant for the user: printed as one line, exit code 1. */
export class UserError extends Error {
  readonly userError = true;
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}
