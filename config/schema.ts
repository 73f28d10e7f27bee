// signalbox.yml, defined once: the JSON Schema that checks the file (and that editors read, as signalbox.schema.json),
// the types of the file and of the loaded config, and the constant defaults. Every property carries a
// `description`, which doubles as the "fix" in errors.
import {
  Type,
  type Evaluate,
  type SchemaOptions,
  type Static,
  type TArray,
  type TObject,
  type TOptional,
  type TProperties,
  type TSchema,
} from '@sinclair/typebox';
import { DEFAULT_STRATEGY } from '../workflows/plan';
import { TASK_QUEUE } from '../workflows/definitions';
import { DEFAULT_WINDOWS } from '../workflows/windows';
import { BACKGROUND_ERROR_RATE } from '../sandbox/traffic';

/** A key the file may leave out: loading fills in `value` (Value.Default), so Filled has it always. */
function Default<T extends TSchema>(value: Static<T>, schema: T) {
  return Type.Optional({ ...schema, default: value } as T & { default: Static<T> });
}

type OptionalKeys<P extends TProperties> = { [K in keyof P]: P[K] extends TOptional<TSchema> ? K : never }[keyof P];
type DefaultKeys<P extends TProperties> = {
  [K in OptionalKeys<P>]: P[K] extends { default: unknown } ? K : never;
}[OptionalKeys<P>];

/**
 * A value that matched schema S, once Value.Default has filled in the defaults: keys made with Default are no longer
 * optional. Like Value.Default, it leaves the values of records (services, auth.groups) and of unions alone.
 */
export type Filled<S extends TSchema> =
  S extends TObject<infer P>
    ? Evaluate<
        { [K in Exclude<keyof P, OptionalKeys<P>> | DefaultKeys<P>]: Filled<P[K]> } & {
          [K in Exclude<OptionalKeys<P>, DefaultKeys<P>>]?: Filled<P[K]>;
        }
      >
    : S extends TArray<infer I>
      ? Filled<I>[]
      : Static<S>;

// The forms below are written as plain JSON Schema where TypeBox would write another form that errors read worse:
// `enum` (TypeBox's union of literals reports each literal), a `type` list, and auth's `oneOf`.
const Enum = <const T extends readonly string[]>(values: T, options: SchemaOptions) =>
  Type.Unsafe<T[number]>({ ...options, enum: values });

// A percentage over 100 would fail inside every workflow that plans with it, so the file is refused instead.
const amount = Type.String({
  pattern: '^(\\d+|(100(\\.0+)?|\\d{1,2}(\\.\\d+)?)%)$',
  description: 'a whole count such as "3", or a percentage from "0%" to "100%" such as "10%", in quotes',
});
const templated = Type.String({
  minLength: 1,
  description: 'text; {{host}}, {{address}}, {{port}}, {{group}}, {{version}}, {{release}} are filled in',
});
const ms = (what: string, minimum = 0, why = '') =>
  Type.Integer({
    minimum,
    description: `${what}, in milliseconds${minimum ? `, at least ${minimum}${why ? `: ${why}` : ''}` : ''}`,
  });
// A measurement or poll with no pause between them spins: it loads the fleet and fills workflow history.
const interval = (what: string) => ms(what, 1000, 'shorter pauses only spin');
const share = (what: string) => Type.Number({ minimum: 0, maximum: 1, description: `${what}, 0 to 1` });

const check = Type.Object(
  {
    name: Type.Optional(Type.String()),
    timeoutMs: Type.Optional(
      ms('how long one attempt may take', 100, 'a 0 timeout means none to the socket, so a check could hang'),
    ),
    attempts: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 60, description: 'attempts before the check fails (1 to 60)' }),
    ),
    intervalMs: Type.Optional(ms('pause between attempts')),
    groups: Type.Optional(Type.Array(Type.String(), { description: 'run only on hosts in these groups' })),
    tcp: Type.Optional(
      Type.Object(
        {
          port: Type.Unsafe<number | string>({
            type: ['integer', 'string'],
            description: 'a port number or "{{port}}"',
          }),
        },
        { additionalProperties: false },
      ),
    ),
    http: Type.Optional(
      Type.Object(
        {
          url: templated,
          hostHeader: Type.Optional(templated),
          status: Type.Optional(Type.Integer()),
          body: Type.Optional(templated),
        },
        {
          additionalProperties: false,
          description: 'url, with optional hostHeader, status (default 200) and body (text that must appear)',
        },
      ),
    ),
    command: Type.Optional(
      Type.Array(templated, { minItems: 1, description: 'an argv list run on the host; exit 0 passes' }),
    ),
    logScan: Type.Optional(
      Type.Object(
        { file: templated, pattern: Type.String(), ignore: Type.Optional(Type.Array(Type.String())) },
        {
          additionalProperties: false,
          description: 'file on the host and a pattern; any new matching line since the switch fails the check',
        },
      ),
    ),
  },
  {
    additionalProperties: false,
    description: 'exactly one of tcp, http, command, logScan, with optional name and timeoutMs',
    oneOf: [{ required: ['tcp'] }, { required: ['http'] }, { required: ['command'] }, { required: ['logScan'] }],
  },
);

/** How an analysis run judges: shared by the canary analysis and the train's error watch (one AnalysisRun model). */
const judging = {
  method: Type.Optional(
    Enum(['sequential', 'fixed'], {
      description:
        'sequential (anytime-valid tests over the whole run, the default) or fixed (per-interval thresholds)',
    }),
  ),
  alpha: Type.Optional(
    Type.Number({
      exclusiveMinimum: 0,
      maximum: 0.2,
      description:
        'the chance a healthy release fails a whole run, however often it is looked at (above 0, at most 0.2; default 0.005)',
    }),
  ),
  minEffect: Type.Optional(
    Type.Number({
      exclusiveMinimum: 0,
      maximum: 1,
      description: 'the smallest error-rate rise worth catching, in points of rate: 0.01 is +1 point (default)',
    }),
  ),
  ceiling: Type.Optional(
    share('guardrail: an error rate confidently above this fails whatever the baseline does (default 0.05)'),
  ),
  power: Type.Optional(
    Type.Number({
      minimum: 0,
      maximum: 0.999,
      description:
        'a window passes only if a rise of minEffect would have been caught with at least this chance; short of it, it holds for a person (default 0.9; 0 turns the rule off)',
    }),
  ),
  inconclusiveLimit: Type.Optional(
    Type.Integer({ minimum: 0, description: 'intervals with too little traffic tolerated by the fixed method' }),
  ),
  consecutiveErrorLimit: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: 100,
      description: 'unreadable measurements in a row tolerated; one more holds for a person (default 4)',
    }),
  ),
  latency: Type.Optional(
    Type.Object(
      {
        maxP99Ratio: Type.Optional(
          Type.Number({ minimum: 1, description: "p99 at most this many times the baseline's" }),
        ),
        maxP99Ms: Type.Optional(Type.Integer({ minimum: 1, description: 'p99 at most this many ms' })),
      },
      {
        additionalProperties: false,
        description: "maxP99Ratio (times the baseline's p99) and/or maxP99Ms; off when absent",
      },
    ),
  ),
  trafficFloor: Type.Optional(
    Type.Object(
      {
        share: share("the least share of the baseline's traffic (per host, or per ms before the move)"),
        intervals: Type.Optional(Type.Integer({ minimum: 1, maximum: 60 })),
      },
      {
        additionalProperties: false,
        description: "share (of the baseline's traffic, 0 to 1) and intervals in a row below it that fail the run",
      },
    ),
  ),
};
export type Judging = Static<TObject<typeof judging>>;

const analysis = Type.Object(
  {
    ...judging,
    newErrorMin: Default(
      5,
      Type.Integer({
        minimum: 1,
        description: 'an error signature the baseline never showed fails once the canaries show it this many times',
      }),
    ),
    source: Default(
      'scrape',
      Enum(['prometheus', 'scrape'], {
        description: "prometheus (query its HTTP API) or scrape (read the hosts' /metrics directly)",
      }),
    ),
    prometheusUrl: Type.Optional(Type.String({ description: 'base URL of Prometheus, such as http://127.0.0.1:9090' })),
    intervalMs: Default(5000, interval('time between measurements')),
    measurements: Default(
      3,
      Type.Integer({ minimum: 1, maximum: 1440, description: 'how many measurements make the run (1 to 1440)' }),
    ),
    failureLimit: Default(
      0,
      Type.Integer({ minimum: 0, description: 'failed measurements tolerated by the fixed method' }),
    ),
    maxErrorRate: Default(0.01, share('the fixed method: error-rate ceiling for the canaries in one measurement')),
    maxRatioToBaseline: Default(
      10,
      Type.Number({
        minimum: 1,
        description: 'the fixed method: canary error rate may be at most this many times the baseline',
      }),
    ),
    minRequests: Default(
      20,
      Type.Integer({
        minimum: 0,
        description: 'fewer canary (or baseline) requests than this over the run cannot pass: it holds for a person',
      }),
    ),
  },
  { additionalProperties: false, description: 'metric analysis of the canaries against the rest of the fleet' },
);

export const service = Type.Object(
  {
    link: Type.String({
      pattern: '^[A-Za-z0-9._{}-]+$',
      description: 'the symlink switched on activation: "current", or "php-{{version}}"',
    }),
    restart: Type.Optional(Type.Array(templated, { description: 'argv run on the host after the switch' })),
    /** Run on the deploy server in the staged tree, before hashing: what runs on hosts is what was built. */
    build: Type.Optional(
      Type.Array(Type.String(), {
        minItems: 1,
        description:
          'argv run in the staged tree before it is hashed (a localisation cache or autoloader rebuild); no shell unless you call one',
      }),
    ),
    keep: Default(5, Type.Integer({ minimum: 1, maximum: 100, description: 'releases kept on each host (1 to 100)' })),
    checks: Default([], Type.Array(check)),
    analysis: Type.Optional(analysis),
  },
  { additionalProperties: false, description: 'a deployable service: link, restart, keep, checks, analysis' },
);

const host = Type.Object(
  {
    name: Type.String({
      pattern: '^[A-Za-z0-9][A-Za-z0-9.-]*$',
      description: 'a host name of letters, digits, dots and dashes',
    }),
    address: Type.String({ description: 'IP address or DNS name' }),
    port: Type.Optional(Type.Integer({ description: 'the app server port' })),
    root: Type.String({ description: 'absolute folder on the host that holds the services' }),
    groups: Type.Array(Type.String(), { description: 'groups this host belongs to, such as [appserver, canary]' }),
    transport: Default('ssh', Enum(['local', 'ssh'], { description: 'local (this machine) or ssh' })),
    sshPort: Type.Optional(Type.Integer()),
    pool: Type.Optional(
      Type.Union([Type.String(), Type.Null()], {
        description:
          'load-balancer pool; null for a host in none (a test server such as mwdebug): never depooled or repooled, it serves no traffic',
      }),
    ),
  },
  { additionalProperties: false },
);

const hhmm = Type.String({
  pattern: '^([01]\\d|2[0-3]):[0-5]\\d$|^24:00$',
  description: 'a local time such as "09:00" ("24:00" ends the day)',
});
const deployWindow = Type.Object(
  {
    day: Enum(['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'], {
      description: 'a weekday: Sun, Mon, Tue, Wed, Thu, Fri or Sat',
    }),
    from: Type.Optional(hhmm),
    to: Type.Optional(hhmm),
  },
  { additionalProperties: false, description: 'day (Sun to Sat) with optional from and to times' },
);
const hostPort = Type.String({ minLength: 3, description: 'host:port, or a {{sandbox...}} template' });

const principals = Type.Array(Type.String({ pattern: '^@?[A-Za-z0-9][A-Za-z0-9._@-]*$' }), {
  minItems: 1,
  description: 'principals as named in allowedSigners, or @group names from auth.groups; a role may not be empty',
});

export const signedAuth = Type.Object(
  {
    allowedSigners: Type.String({
      minLength: 1,
      description:
        'a file in OpenSSH allowed_signers format mapping principals to their SSH keys (see ssh-keygen(1), ALLOWED SIGNERS)',
    }),
    roles: Type.Object(
      { deployers: principals, approvers: principals, admins: principals },
      {
        additionalProperties: false,
        description:
          'deployers may pause, roll back and ack; approvers may approve, resume and deploy; admins may abort and change schedules',
      },
    ),
    groups: Type.Optional(
      Type.Record(Type.String(), principals, { description: 'named lists of principals, used in roles as @name' }),
    ),
    maxAgeSeconds: Default(
      300,
      Type.Integer({
        minimum: 10,
        maximum: 3600,
        description: 'how long a signature is good for (10 to 3600 s; default 300)',
      }),
    ),
  },
  { additionalProperties: false },
);

const sandbox = Type.Object(
  {
    hosts: Default(12, Type.Integer({ minimum: 1, maximum: 5000, description: 'how many sandbox hosts (1 to 5000)' })),
    testServers: Default(
      0,
      Type.Integer({
        minimum: 0,
        maximum: 10,
        description:
          'how many test servers besides the hosts (0 to 10): mwdebug1001 and on, in group debug and in no load-balancer pool, as backports use them',
      }),
    ),
    trafficPerSecond: Default(
      40,
      Type.Number({ minimum: 0, description: 'requests per second from the traffic generator' }),
    ),
    /** The background share of requests that fail on every version, per wiki group. */
    errorRate: Default(
      BACKGROUND_ERROR_RATE,
      Type.Union(
        [
          Type.Number({ minimum: 0, maximum: 1, description: 'a share of requests from 0 to 1, such as 0.003' }),
          Type.Object(
            {
              testwikis: Type.Optional(share('the background error share of testwikis')),
              group0: Type.Optional(share('the background error share of group0')),
              group1: Type.Optional(share('the background error share of group1')),
              group2: Type.Optional(share('the background error share of group2')),
            },
            { additionalProperties: false },
          ),
        ],
        {
          description:
            'background share of requests that fail on every version, 0 to 1 (default 0.003): ' +
            'one number, or one per group such as { group2: 0.001 }',
        },
      ),
    ),
    /** Now and then the background error rate rises 5x fleet-wide for a few seconds. */
    bursts: Default(
      true,
      Type.Boolean({
        description:
          'true (default) or false: about every 3 minutes background errors rise 5x fleet-wide for 5 to 15 s',
      }),
    ),
    seed: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 2 ** 32 - 1,
        description:
          "the seed of the sandbox's random traffic, errors and latencies, to repeat a run (default: $SIGNALBOX_SANDBOX_SEED, else a fresh one, shown by `sandbox up`)",
      }),
    ),
  },
  { additionalProperties: false },
);

const fleet = Type.Object(
  {
    sandbox: Type.Optional(sandbox),
    hosts: Type.Optional(Type.Array(host)),
    rsyncSource: Type.Optional(
      Type.String({ description: 'where hosts pull releases: rsync://deploy.example:873/releases, or a folder' }),
    ),
    ssh: Default(
      {},
      Type.Object(
        {
          user: Type.Optional(Type.String()),
          privateKey: Type.Optional(
            Type.String({ description: 'path to the private key; the SSH agent is used when absent' }),
          ),
          knownHosts: Type.Optional(
            Type.String({ description: 'path to a known_hosts file; unknown or changed keys are refused' }),
          ),
          connectTimeoutMs: Default(
            10_000,
            ms('SSH connect timeout', 1000, 'no host finishes the SSH handshake faster'),
          ),
          commandTimeoutMs: Default(120_000, ms('timeout for one command', 1000, 'fetching a release is one command')),
        },
        { additionalProperties: false },
      ),
    ),
    loadBalancer: Type.Optional(
      Type.String({ description: 'base URL of the load-balancer API, such as http://127.0.0.1:9400' }),
    ),
  },
  { additionalProperties: false, description: 'either sandbox (hosts on this machine) or hosts (a list)' },
);

const train = Type.Object(
  {
    autoApprove: Default(false, Type.Boolean()),
    // Lower than the other intervals: the polls run inside one activity bounded by verifyTimeoutMs, they re-ask
    // only the wikis not yet confirmed, and they sit on the path of every station move.
    verifyEveryMs: Default(
      1000,
      ms(
        'pause between live-version checks',
        100,
        'the polls stay inside one activity and re-ask only unconfirmed wikis, so short pauses are cheap; less than 100 only hammers the app servers',
      ),
    ),
    verifyTimeoutMs: Default(
      10_000,
      ms('how long the live version may take to show', 1000, 'restarted app servers need time to answer'),
    ),
    watchMs: Default(3_600_000, ms('how long to watch errors after each station (0: no watch)')),
    watchIntervalMs: Default(60_000, interval('time between error measurements during the watch')),
    watchMaxErrorRate: Default(
      0.01,
      Type.Number({
        minimum: 0,
        maximum: 1,
        description: "the moved group's error-rate ceiling during the watch, 0 to 1",
      }),
    ),
    watchMaxRatio: Default(
      5,
      Type.Number({
        minimum: 1,
        description: 'the moved group may have at most this many times its error rate before the move',
      }),
    ),
    watchMinRequests: Default(
      50,
      Type.Integer({
        minimum: 0,
        description:
          'fewer requests than this over the watch cannot pass: it holds for a person (a thin window before the move only makes the comparison less sensitive)',
      }),
    ),
    watchNewErrorMin: Default(
      5,
      Type.Integer({
        minimum: 1,
        description: 'an error signature never seen before the move fails the watch once seen this many times',
      }),
    ),
    watchJudging: Type.Optional(
      Type.Object(judging, {
        additionalProperties: false,
        description:
          'how the watch judges: method, alpha, minEffect, ceiling, consecutiveErrorLimit, latency, trafficFloor',
      }),
    ),
    codeService: Default('mediawiki', Type.String()),
    configService: Default('mediawiki-config', Type.String()),
    gate: Default(
      'approval',
      Enum(['approval', 'window'], {
        description:
          'approval (a person approves each station) or window (a station moves by itself inside its deploy window when nothing blocks it)',
      }),
    ),
    windows: Default(
      {},
      Type.Object(
        {
          timezone: Default(
            'UTC',
            Type.String({ minLength: 1, description: 'an IANA timezone such as America/Los_Angeles' }),
          ),
          testwikis: Default(DEFAULT_WINDOWS.testwikis, deployWindow),
          group0: Default(DEFAULT_WINDOWS.group0, deployWindow),
          group1: Default(DEFAULT_WINDOWS.group1, deployWindow),
          group2: Default(DEFAULT_WINDOWS.group2, deployWindow),
        },
        // A station written in the file is laid over its default window: Value.Default merges an object default
        // into the object given, so `group1: { day: Mon }` keeps the default from and to.
        { additionalProperties: false, description: 'timezone plus a window for each station' },
      ),
    ),
    securityPatches: Default(
      'patches',
      Type.String({
        description:
          'folder of <version>/*.patch (git format-patch) applied with git am at stage; relative to the signalbox home',
      }),
    ),
    blockers: Type.Optional(
      Type.Object(
        {
          pollMs: Default(300_000, interval('how often open blockers are checked while they hold the train')),
          github: Type.Object(
            {
              repository: Type.String({
                pattern: '^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$',
                description: 'owner/name of the repository holding the train blocker issues',
              }),
              apiUrl: Default('https://api.github.com', Type.String()),
              tokenEnv: Default('GITHUB_TOKEN', Type.String()),
            },
            {
              additionalProperties: false,
              description:
                'repository (owner/name), apiUrl (default https://api.github.com) and tokenEnv (the variable holding the token)',
            },
          ),
        },
        { additionalProperties: false, description: 'where train blockers are tracked: github, with pollMs' },
      ),
    ),
  },
  { additionalProperties: false },
);

const notify = Type.Object(
  {
    sal: Default('sal.log', Type.String({ description: 'the Server Admin Log file; relative to the signalbox home' })),
    irc: Type.Optional(
      Type.Object(
        {
          server: hostPort,
          channel: Type.String({
            pattern: '^#',
            description: 'a channel such as "#wikimedia-operations" (quoted)',
          }),
          nick: Default(
            'signalbox',
            Type.String({ pattern: '^[A-Za-z][A-Za-z0-9_-]{0,15}$', description: 'an IRC nick' }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    slack: Type.Optional(
      Type.Object(
        { webhookUrl: Type.String({ description: 'the incoming-webhook URL, or {{sandboxSlack}}' }) },
        { additionalProperties: false },
      ),
    ),
    email: Type.Optional(
      Type.Object(
        {
          smtp: hostPort,
          from: Type.String(),
          to: Type.Array(Type.String(), { minItems: 1, description: 'a list of addresses' }),
        },
        { additionalProperties: false },
      ),
    ),
    /** Embargoed news only: never IRC's public channel, Slack or the public lists. */
    private: Type.Optional(
      Type.Object(
        {
          email: Type.Optional(
            Type.Array(Type.String(), {
              minItems: 1,
              description: "private addresses, such as the security team's list",
            }),
          ),
          ircChannel: Type.Optional(
            Type.String({
              pattern: '^#',
              description: 'a private channel such as "#mediawiki-security" (quoted)',
            }),
          ),
        },
        {
          additionalProperties: false,
          minProperties: 1,
          description:
            "where embargoed news goes (a security patch that does not apply): email (a list of addresses, sent through notify.email's server) and/or ircChannel (a private channel on notify.irc's server)",
        },
      ),
    ),
  },
  { additionalProperties: false, description: 'sal, irc, slack, email' },
);

const weekdays = Type.Array(
  Enum(['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'], {
    description: 'a weekday: Sun, Mon, Tue, Wed, Thu, Fri or Sat',
  }),
  { minItems: 1, uniqueItems: true, description: 'weekdays such as [Mon, Tue, Wed, Thu]' },
);

const backport = Type.Object(
  {
    testHosts: Default(
      'debug',
      Type.String({
        minLength: 1,
        description: 'the host group of test servers (like mwdebug) that every backport reaches first (default debug)',
      }),
    ),
    confirmTimeoutMs: Default(
      900_000,
      ms(
        'how long the test servers wait for `backport confirm` before the backport reverts itself (default 15 min)',
        1000,
        'a person needs time to look',
      ),
    ),
    deployersMay: Default(
      false,
      Type.Boolean({ description: 'true lets deployers start backports; false (default) takes an approver' }),
    ),
    requireHumanReview: Default(
      false,
      Type.Boolean({
        description:
          "true: a change needs a Code-Review +2 from a person other than its owner; false (default): the deployer's +2, given by signalbox, is enough",
      }),
    ),
    windows: Type.Optional(
      Type.Object(
        {
          timezone: Default('UTC', Type.String({ minLength: 1, description: 'an IANA timezone such as UTC' })),
          times: Type.Array(
            Type.Object(
              { days: weekdays, from: hhmm, to: hhmm },
              {
                additionalProperties: false,
                description: 'days, from and to, such as { days: [Mon, Tue], from: "13:00", to: "14:00" }',
              },
            ),
            {
              minItems: 1,
              description: 'the backport windows; outside them a backport needs --emergency from an approver',
            },
          ),
        },
        {
          additionalProperties: false,
          description: 'timezone and times (absent: a backport may start at any time)',
        },
      ),
    ),
  },
  { additionalProperties: false },
);

export const gerrit = Type.Object(
  {
    url: Type.String({
      pattern: '^https?://',
      description: 'the Gerrit web URL, such as https://gerrit.example.org/',
    }),
    user: Default('signalbox', Type.String({ description: 'the account signalbox reviews and submits as' })),
    passwordEnv: Default(
      'GERRIT_HTTP_PASSWORD',
      Type.String({ description: "the environment variable holding that account's HTTP password" }),
    ),
    mergeTimeoutMs: Default(
      600_000,
      Type.Integer({ minimum: 1000, description: 'how long to wait for a submitted change to be MERGED, in ms' }),
    ),
  },
  { additionalProperties: false },
);

export const github = Type.Object(
  {
    owner: Type.String({
      pattern: '^[A-Za-z0-9_.-]+$',
      description: 'the organisation that owns the mediawiki and mediawiki-config repositories',
    }),
    apiUrl: Default(
      'https://api.github.com',
      Type.String({ description: 'the REST API root, https://api.github.com by default' }),
    ),
    tokenEnv: Default(
      'GITHUB_TOKEN',
      Type.String({ description: 'the environment variable holding a token that may push and merge' }),
    ),
  },
  { additionalProperties: false },
);

/** The whole file. */
export const configSchema = Type.Object(
  {
    auth: Type.Unsafe<'none' | Static<typeof signedAuth>>({
      description:
        'who may steer: none (open mode: anyone, unverified; the sandbox uses it), or { allowedSigners, roles }',
      oneOf: [{ const: 'none' }, signedAuth],
    }),
    temporal: Default(
      {},
      Type.Object(
        {
          address: Default(
            '127.0.0.1:7233',
            Type.String({
              pattern: '^[^:\\s]+:\\d+$',
              description: 'host:port of the Temporal frontend, such as 127.0.0.1:7233',
            }),
          ),
          namespace: Default('default', Type.String({ minLength: 1 })),
          taskQueue: Default(TASK_QUEUE, Type.String({ minLength: 1 })),
          uiPort: Default(8233, Type.Integer({ minimum: 1, maximum: 65535 })),
        },
        { additionalProperties: false },
      ),
    ),
    // Absent, it is the sandbox: loading writes that in, since an object default would be merged into a fleet given.
    fleet: Type.Optional(fleet),
    services: Type.Record(Type.String(), service, { minProperties: 1 }),
    rollout: Default(
      {},
      Type.Object(
        {
          canary: Default(
            DEFAULT_STRATEGY.canary,
            Type.Union([amount, Type.Null()], {
              description:
                'a whole count such as "3", a percentage from "0%" to "100%" such as "10%" (in quotes), or null for no canary wave',
            }),
          ),
          canaryGroup: Type.Optional(Type.String({ description: 'hosts in this group are the canaries' })),
          batch: Default(DEFAULT_STRATEGY.batch, amount),
          maxFail: Default(DEFAULT_STRATEGY.maxFail, amount),
          fetchConcurrency: Default(DEFAULT_STRATEGY.fetchConcurrency, Type.Integer({ minimum: 1, maximum: 1000 })),
        },
        { additionalProperties: false },
      ),
    ),
    train: Default({}, train),
    backport: Default({}, backport),
    notify: Default({}, notify),
    /** Where the code and config repositories live; absent means the local git forge of the state folder. */
    forge: Type.Optional(
      Type.Object(
        { gerrit: Type.Optional(gerrit), github: Type.Optional(github) },
        {
          additionalProperties: false,
          minProperties: 1,
          maxProperties: 1,
          description:
            'where the repositories live when not in the local git forge: gerrit (url, user, passwordEnv, mergeTimeoutMs) or github (owner, apiUrl, tokenEnv)',
        },
      ),
    ),
    roadmap: Type.Optional(
      Type.Object(
        {
          api: Type.String({ description: "the wiki's api.php URL, or {{sandboxWiki}}" }),
          page: Type.String({ minLength: 1 }),
          user: Type.Optional(Type.String({ description: 'a bot-password user such as Signalbox@train' })),
          passwordEnv: Type.Optional(Type.String({ description: 'the environment variable holding the bot password' })),
        },
        {
          additionalProperties: false,
          description: 'the roadmap wiki page: api (api.php URL), page, user, passwordEnv',
        },
      ),
    ),
  },
  { additionalProperties: false },
);

/** signalbox.yml as written. */
export type ConfigFile = Static<typeof configSchema>;
/** signalbox.yml with its constant defaults filled in. */
export type FilledConfig = Filled<typeof configSchema>;
export type ServiceFile = Filled<typeof service>;
export type AnalysisFile = Filled<typeof analysis>;
export type SignedAuthFile = Filled<typeof signedAuth>;
export type CheckSpec = Static<typeof check>;
export type HostSpec = Filled<typeof host>;
export type GitHubSpec = Filled<typeof github>;
export type GerritSpec = Filled<typeof gerrit>;

/** signalbox.schema.json: the schema for editors, written by `npm run schema` (tools/write-schema.ts). */
export function schemaJson(): string {
  const document = { $schema: 'http://json-schema.org/draft-07/schema#', title: 'signalbox.yml', ...configSchema };
  return `${JSON.stringify(document, null, 2)}\n`;
}
