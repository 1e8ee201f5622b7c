/**
 * `hourglass`: the admin and operations CLI. Every command is one call to the admin API
 * (/v1/admin) of any node, except `messages schedule` and `messages update` (POST and PATCH
 * /v1/messages with an app token); see
 * `hourglass --help`.
 */
import type { Command, Globals } from './args';
import { USAGE, UsageError, parse } from './args';
import { render } from './render';
import { followUp, mergeAnswers } from './search';

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

/** Runs one command line and returns the exit code (0 done, 1 refused/unreachable, 2 usage). */
export async function run(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  io: Io,
): Promise<number> {
  let parsed;
  try {
    parsed = parse(argv, env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.err(`hourglass: ${error.message}\n(see "hourglass --help")\n`);
    return 2;
  }
  if (parsed.help) {
    io.out(USAGE);
    return 0;
  }
  return call(parsed.globals, parsed.command, io);
}

async function call(globals: Globals, command: Command, io: Io): Promise<number> {
  // Most commands are one call; `messages list --all` and a filter cancel continue (./search.ts).
  let answer: unknown;
  for (let next: Command | null = command; next !== null;) {
    const body = await callOnce(globals, next, io);
    if (body === REFUSED) return 1;
    answer = answer === undefined ? body : mergeAnswers(answer, body);
    next = next.follow ? followUp(next, body) : null;
  }
  io.out(globals.json ? `${JSON.stringify(answer, null, 2)}\n` : render(command.view, answer));
  return 0;
}

/** Marks a call that failed (the reason is printed already). */
const REFUSED = Symbol('refused');

async function callOnce(globals: Globals, command: Command, io: Io): Promise<unknown> {
  const url = `${globals.url}${command.path}`;
  let response: Response;
  try {
    response = await fetch(url, {
      method: command.method,
      headers: {
        authorization: `Bearer ${command.appToken ?? globals.token}`,
        ...(command.body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...command.headers,
      },
      body: command.body !== undefined ? JSON.stringify(command.body) : undefined,
      signal: AbortSignal.timeout(30_000),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    io.err(
      `hourglass: cannot reach ${globals.url} (${cause?.code ?? cause?.message ?? (error as Error).message}); is a node running? Set --url or HOURGLASS_URL.\n`,
    );
    return REFUSED;
  }
  const text = await response.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : {};
  } catch {
    // Not JSON: printed as is below.
  }
  if (!response.ok) {
    const error = (
      body as {
        error?: {
          code?: string;
          message?: string;
          details?: Array<{ path: string; message: string }>;
        };
      }
    ).error;
    if (globals.json)
      io.out(`${typeof body === 'string' ? body : JSON.stringify(body, null, 2)}\n`);
    if (error?.code) {
      io.err(
        `hourglass: ${command.name} failed: ${response.status} ${error.code}: ${error.message ?? ''}\n`,
      );
      for (const detail of error.details ?? []) io.err(`  ${detail.path}: ${detail.message}\n`);
      if (error.code === 'unauthenticated' || error.code === 'forbidden')
        io.err(
          command.appToken !== undefined
            ? `  (${command.name} needs an app token: --app-token or HOURGLASS_APP_TOKEN)\n`
            : '  (the admin API needs the admin token: --token or HOURGLASS_ADMIN_TOKEN)\n',
        );
      const retryAfter = response.headers.get('retry-after');
      if (retryAfter) io.err(`  retry after ${retryAfter} s\n`);
    } else {
      io.err(
        `hourglass: ${command.name} failed: HTTP ${response.status} ${typeof body === 'string' ? body.slice(0, 500) : ''}\n`,
      );
    }
    return REFUSED;
  }
  return body;
}

if (require.main === module) {
  run(process.argv.slice(2), process.env, {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
  }).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(
        `hourglass: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
      process.exitCode = 1;
    },
  );
}
