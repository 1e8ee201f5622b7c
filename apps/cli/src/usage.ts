/**
 * What the CLI tells its user about usage: the `--help` text, the defaults it names, and the
 * {@link UsageError} a bad command line is refused with (exit code 2).
 */

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const DEFAULT_URL = 'http://127.0.0.1:8081';
/** The local cluster's well-known admin token (a node refuses it off loopback). */
export const DEFAULT_ADMIN_TOKEN = 'admin-token';

export const USAGE = `hourglass — the Hourglass admin CLI (talks to the admin API under /v1/admin)

usage: hourglass <group> <command> [arguments] [flags]

  apps list
  apps get <app>
  apps create <app> [--description TEXT] [--topic TOPIC]... [quota flags]
  apps update <app> --description TEXT
  apps delete <app>
  apps disable <app> | apps enable <app>
  apps rotate-secret <app> [--grace-seconds N]  (default 86400: callbacks carry both signatures that long)
  apps delivery <app> [delivery flags]           (callback hosts, dead letters, alerts, default retry)
  tokens rotate <app> [--grace-seconds N]       (default 3600: old tokens keep working that long)
  topics add <app> <topic> [--partitions N] [--replication-factor N]
  topics remove <app> <topic>
  quotas set <app> [quota flags]                 (replaces all quotas; a flag left out means no limit)
  slots list | slots pin <slot> <node> | slots unpin <slot>
  nodes list | nodes drain <id> | nodes undrain <id>
  messages get <app> <id> | messages cancel <app> <id>
  messages list [--app APP] [filter flags] [--limit N] [--all | --cursor CURSOR]
                                                 (every app's messages, newest id first; --limit per page,
                                                 default 100, at most 1000; --all follows every page)
  messages cancel --app-token TOKEN <id>...      (POST /v1/messages/cancel as the app: up to 1000 ids)
  messages cancel --app-token TOKEN [filter flags]
                                                 (every scheduled message of the app that matches, e.g.
                                                 --key K [--state scheduled]; repeated until done)
  messages attempts <app> <id>                   (delivery attempts of its callbacks, oldest first)
  messages retry <app> <id>                      (re-arms the failed targets of a failed message)
  messages schedule --app-token TOKEN [schedule flags] [debounce flags]
                                                 (POST /v1/messages as the app; the admin token cannot publish)
  messages update <id> --app-token TOKEN [--if-version N] [schedule flags but --id]
                                                 (PATCH /v1/messages/{id} as the app: each flag given replaces
                                                 that part of a scheduled message; --topic or --callback
                                                 replaces all its targets; --if-version N: only if still
                                                 at version N, else 412 version_mismatch)
  stats

filter flags (messages list, and messages cancel, which takes only scheduled messages):
  --state STATE[,STATE]  scheduled, delivered, cancelled, failed
  --key KEY  --topic TOPIC  --target kafka|http
  --due-after ISO-8601  --due-before ISO-8601  --created-after ISO-8601

quota flags: --rate N (messages/s) --burst N --max-pending N --max-payload-bytes N --max-delay-ms N

schedule flags (at least one of --topic and --callback; see docs/callbacks.md):
  --app-token TOKEN      the app's token (default $HOURGLASS_APP_TOKEN)
  --id ID  --topic TOPIC  --key KEY  --header NAME=VALUE...  --content-type TYPE
  --payload JSON | --payload-base64 B64
  --delay-ms N | --deliver-at ISO-8601-or-epoch-ms
  --callback URL [--callback-name NAME] [--method POST|PUT] [--timeout-ms N]
                 [--expect-body TEXT] [--envelope] [--callback-header NAME=VALUE]...
  retry flags

debounce flags (messages schedule only; README "Debounce"): collapse the app's scheduled messages
of one key into one; prints "debounced into <id>" when this one was merged or dropped
  --debounce-key K --debounce-window MS  the key, and the window in milliseconds
  [--debounce-max-wait MS]               trailing: never due later than the first one + MS
  [--debounce-mode trailing|leading]     trailing (default): the last content wins, due MS after
                                         it (no --delay-ms/--deliver-at); leading: the first wins

retry flags (a message's strategy, or an app's default with apps delivery; left out: the default):
  --retry-strategy fixed|linear|exponential  --retry-initial-ms N  --retry-max-ms N
  --retry-attempts N (the first attempt included)  --no-jitter

delivery flags (each setting given replaces the app's; left out: unchanged):
  --callback-host HOST...      the only hosts its callbacks may call (e.g. example.com, *.example.com)
  --dead-letter-topic TOPIC    where a target that finally fails is also produced
  --alert-after N [--alert-url URL] [--alert-topic TOPIC]
                               alert when a target's attempts reach N, and when it finally fails
  retry flags                  the app's default retry strategy
  --clear-callback-hosts  --clear-dead-letter-topic  --clear-alerts  --clear-retry

flags:
  --url URL      node to talk to (default $HOURGLASS_URL or ${DEFAULT_URL})
  --token TOKEN  admin token (default $HOURGLASS_ADMIN_TOKEN or "${DEFAULT_ADMIN_TOKEN}", the local cluster's)
  --json         print the server's JSON answer (for scripts)
  -h, --help     this help

exit codes: 0 done, 1 the server refused or could not be reached, 2 bad usage
`;
