// The schema of signalbox.yml. Every property carries a `description`, which doubles as the "fix" in errors.

// A percentage over 100 would fail inside every workflow that plans with it, so the file is refused instead.
const amount = {
  type: 'string',
  pattern: '^(\\d+|(100(\\.0+)?|\\d{1,2}(\\.\\d+)?)%)$',
  description: 'a whole count such as "3", or a percentage from "0%" to "100%" such as "10%", in quotes',
};
const templated = {
  type: 'string',
  minLength: 1,
  description: 'text; {{host}}, {{address}}, {{port}}, {{group}}, {{version}}, {{release}} are filled in',
};
const ms = (what: string, minimum = 0, why = '') => ({
  type: 'integer',
  minimum,
  description: `${what}, in milliseconds${minimum ? `, at least ${minimum}${why ? `: ${why}` : ''}` : ''}`,
});
// A measurement or poll with no pause between them spins: it loads the fleet and fills workflow history.
const interval = (what: string) => ms(what, 1000, 'shorter pauses only spin');

const check = {
  type: 'object',
  description: 'exactly one of tcp, http, command, logScan, with optional name and timeoutMs',
  additionalProperties: false,
  properties: {
    name: { type: 'string' },
    timeoutMs: ms('how long one attempt may take', 100, 'a 0 timeout means none to the socket, so a check could hang'),
    attempts: { type: 'integer', minimum: 1, maximum: 60, description: 'attempts before the check fails (1 to 60)' },
    intervalMs: ms('pause between attempts'),
    groups: { type: 'array', items: { type: 'string' }, description: 'run only on hosts in these groups' },
    tcp: {
      type: 'object',
      additionalProperties: false,
      required: ['port'],
      properties: { port: { type: ['integer', 'string'], description: 'a port number or "{{port}}"' } },
    },
    http: {
      type: 'object',
      additionalProperties: false,
      required: ['url'],
      description: 'url, with optional hostHeader, status (default 200) and body (text that must appear)',
      properties: { url: templated, hostHeader: templated, status: { type: 'integer' }, body: templated },
    },
    command: {
      type: 'array',
      minItems: 1,
      items: templated,
      description: 'an argv list run on the host; exit 0 passes',
    },
    logScan: {
      type: 'object',
      additionalProperties: false,
      required: ['file', 'pattern'],
      description: 'file on the host and a pattern; any new matching line since the switch fails the check',
      properties: {
        file: templated,
        pattern: { type: 'string' },
        ignore: { type: 'array', items: { type: 'string' } },
      },
    },
  },
  oneOf: [{ required: ['tcp'] }, { required: ['http'] }, { required: ['command'] }, { required: ['logScan'] }],
};

const share = (what: string) => ({ type: 'number', minimum: 0, maximum: 1, description: `${what}, 0 to 1` });

/** How an analysis run judges: shared by the canary analysis and the train's error watch (one AnalysisRun model). */
const judging = {
  method: {
    enum: ['sequential', 'fixed'],
    description: 'sequential (anytime-valid tests over the whole run, the default) or fixed (per-interval thresholds)',
  },
  alpha: {
    type: 'number',
    exclusiveMinimum: 0,
    maximum: 0.2,
    description:
      'the chance a healthy release fails a whole run, however often it is looked at (above 0, at most 0.2; default 0.005)',
  },
  minEffect: {
    type: 'number',
    exclusiveMinimum: 0,
    maximum: 1,
    description: 'the smallest error-rate rise worth catching, in points of rate: 0.01 is +1 point (default)',
  },
  ceiling: share('guardrail: an error rate confidently above this fails whatever the baseline does (default 0.05)'),
  inconclusiveLimit: {
    type: 'integer',
    minimum: 0,
    description: 'intervals with too little traffic tolerated by the fixed method',
  },
  consecutiveErrorLimit: {
    type: 'integer',
    minimum: 0,
    maximum: 100,
    description: 'unreadable measurements in a row tolerated; one more holds for a person (default 4)',
  },
  latency: {
    type: 'object',
    additionalProperties: false,
    description: "maxP99Ratio (times the baseline's p99) and/or maxP99Ms; off when absent",
    properties: {
      maxP99Ratio: { type: 'number', minimum: 1, description: "p99 at most this many times the baseline's" },
      maxP99Ms: { type: 'integer', minimum: 1, description: 'p99 at most this many ms' },
    },
  },
  trafficFloor: {
    type: 'object',
    additionalProperties: false,
    required: ['share'],
    description: "share (of the baseline's traffic, 0 to 1) and intervals in a row below it that fail the run",
    properties: {
      share: share("the least share of the baseline's traffic (per host, or per ms before the move)"),
      intervals: { type: 'integer', minimum: 1, maximum: 60 },
    },
  },
};

const analysis = {
  type: 'object',
  additionalProperties: false,
  description: 'metric analysis of the canaries against the rest of the fleet',
  properties: {
    ...judging,
    newErrorMin: {
      type: 'integer',
      minimum: 1,
      description: 'an error signature the baseline never showed fails once the canaries show it this many times',
    },
    source: {
      enum: ['prometheus', 'scrape'],
      description: "prometheus (query its HTTP API) or scrape (read the hosts' /metrics directly)",
    },
    prometheusUrl: { type: 'string', description: 'base URL of Prometheus, such as http://127.0.0.1:9090' },
    intervalMs: interval('time between measurements'),
    measurements: {
      type: 'integer',
      minimum: 1,
      maximum: 1440,
      description: 'how many measurements make the run (1 to 1440)',
    },
    failureLimit: { type: 'integer', minimum: 0, description: 'failed measurements tolerated by the fixed method' },
    maxErrorRate: share('the fixed method: error-rate ceiling for the canaries in one measurement'),
    maxRatioToBaseline: {
      type: 'number',
      minimum: 1,
      description: 'the fixed method: canary error rate may be at most this many times the baseline',
    },
    minRequests: {
      type: 'integer',
      minimum: 0,
      description: 'fewer canary (or baseline) requests than this over the run cannot pass: it holds for a person',
    },
  },
};

const service = {
  type: 'object',
  additionalProperties: false,
  required: ['link'],
  description: 'a deployable service: link, restart, keep, checks, analysis',
  properties: {
    link: {
      type: 'string',
      pattern: '^[A-Za-z0-9._{}-]+$',
      description: 'the symlink switched on activation: "current", or "php-{{version}}"',
    },
    restart: { type: 'array', items: templated, description: 'argv run on the host after the switch' },
    build: {
      type: 'array',
      minItems: 1,
      items: { type: 'string' },
      description:
        'argv run in the staged tree before it is hashed (a localisation cache or autoloader rebuild); no shell unless you call one',
    },
    keep: { type: 'integer', minimum: 1, maximum: 100, description: 'releases kept on each host (1 to 100)' },
    checks: { type: 'array', items: check },
    analysis,
  },
};

const host = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'address', 'root', 'groups'],
  properties: {
    name: {
      type: 'string',
      pattern: '^[A-Za-z0-9][A-Za-z0-9.-]*$',
      description: 'a host name of letters, digits, dots and dashes',
    },
    address: { type: 'string', description: 'IP address or DNS name' },
    port: { type: 'integer', description: 'the app server port' },
    root: { type: 'string', description: 'absolute folder on the host that holds the services' },
    groups: {
      type: 'array',
      items: { type: 'string' },
      description: 'groups this host belongs to, such as [appserver, canary]',
    },
    transport: { enum: ['local', 'ssh'], description: 'local (this machine) or ssh' },
    sshPort: { type: 'integer' },
    pool: { type: 'string', description: 'load-balancer pool' },
  },
};

const hhmm = {
  type: 'string',
  pattern: '^([01]\\d|2[0-3]):[0-5]\\d$|^24:00$',
  description: 'a local time such as "09:00" ("24:00" ends the day)',
};
const deployWindow = {
  type: 'object',
  additionalProperties: false,
  required: ['day'],
  description: 'day (Sun to Sat) with optional from and to times',
  properties: {
    day: {
      enum: ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'],
      description: 'a weekday: Sun, Mon, Tue, Wed, Thu, Fri or Sat',
    },
    from: hhmm,
    to: hhmm,
  },
};
const hostPort = { type: 'string', minLength: 3, description: 'host:port, or a {{sandbox...}} template' };

const principals = {
  type: 'array',
  minItems: 1,
  items: { type: 'string', pattern: '^@?[A-Za-z0-9][A-Za-z0-9._@-]*$' },
  description: 'principals as named in allowedSigners, or @group names from auth.groups; a role may not be empty',
};

const auth = {
  description: 'who may steer: none (open mode: anyone, unverified; the sandbox uses it), or { allowedSigners, roles }',
  oneOf: [
    { const: 'none' },
    {
      type: 'object',
      additionalProperties: false,
      required: ['allowedSigners', 'roles'],
      properties: {
        allowedSigners: {
          type: 'string',
          minLength: 1,
          description:
            'a file in OpenSSH allowed_signers format mapping principals to their SSH keys (see ssh-keygen(1), ALLOWED SIGNERS)',
        },
        roles: {
          type: 'object',
          additionalProperties: false,
          required: ['deployers', 'approvers', 'admins'],
          description:
            'deployers may pause, roll back and ack; approvers may approve, resume and deploy; admins may abort and change schedules',
          properties: { deployers: principals, approvers: principals, admins: principals },
        },
        groups: {
          type: 'object',
          additionalProperties: principals,
          description: 'named lists of principals, used in roles as @name',
        },
        maxAgeSeconds: {
          type: 'integer',
          minimum: 10,
          maximum: 3600,
          description: 'how long a signature is good for (10 to 3600 s; default 300)',
        },
      },
    },
  ],
};

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['services', 'auth'],
  properties: {
    auth,
    temporal: {
      type: 'object',
      additionalProperties: false,
      properties: {
        address: {
          type: 'string',
          pattern: '^[^:\\s]+:\\d+$',
          description: 'host:port of the Temporal frontend, such as 127.0.0.1:7233',
        },
        namespace: { type: 'string', minLength: 1 },
        taskQueue: { type: 'string', minLength: 1 },
        uiPort: { type: 'integer', minimum: 1, maximum: 65535 },
      },
    },
    fleet: {
      type: 'object',
      additionalProperties: false,
      description: 'either sandbox (hosts on this machine) or hosts (a list)',
      properties: {
        sandbox: {
          type: 'object',
          additionalProperties: false,
          properties: {
            hosts: { type: 'integer', minimum: 1, maximum: 5000, description: 'how many sandbox hosts (1 to 5000)' },
            trafficPerSecond: {
              type: 'number',
              minimum: 0,
              description: 'requests per second from the traffic generator',
            },
            errorRate: {
              description:
                'background share of requests that fail on every version, 0 to 1 (default 0.003): ' +
                'one number, or one per group such as { group2: 0.001 }',
              anyOf: [
                {
                  type: 'number',
                  minimum: 0,
                  maximum: 1,
                  description: 'a share of requests from 0 to 1, such as 0.003',
                },
                {
                  type: 'object',
                  additionalProperties: false,
                  properties: Object.fromEntries(
                    ['testwikis', 'group0', 'group1', 'group2'].map((group) => [
                      group,
                      {
                        type: 'number',
                        minimum: 0,
                        maximum: 1,
                        description: `the background error share of ${group}, 0 to 1`,
                      },
                    ]),
                  ),
                },
              ],
            },
            bursts: {
              type: 'boolean',
              description:
                'true (default) or false: about every 3 minutes background errors rise 5x fleet-wide for 5 to 15 s',
            },
          },
        },
        hosts: { type: 'array', items: host },
        rsyncSource: {
          type: 'string',
          description: 'where hosts pull releases: rsync://deploy.example:873/releases, or a folder',
        },
        ssh: {
          type: 'object',
          additionalProperties: false,
          properties: {
            user: { type: 'string' },
            privateKey: { type: 'string', description: 'path to the private key; the SSH agent is used when absent' },
            knownHosts: {
              type: 'string',
              description: 'path to a known_hosts file; unknown or changed keys are refused',
            },
            connectTimeoutMs: ms('SSH connect timeout', 1000, 'no host finishes the SSH handshake faster'),
            commandTimeoutMs: ms('timeout for one command', 1000, 'fetching a release is one command'),
          },
        },
        loadBalancer: {
          type: 'string',
          description: 'base URL of the load-balancer API, such as http://127.0.0.1:9400',
        },
      },
    },
    services: { type: 'object', additionalProperties: service, minProperties: 1 },
    rollout: {
      type: 'object',
      additionalProperties: false,
      properties: {
        canary: {
          anyOf: [amount, { type: 'null' }],
          description:
            'a whole count such as "3", a percentage from "0%" to "100%" such as "10%" (in quotes), or null for no canary wave',
        },
        canaryGroup: { type: 'string', description: 'hosts in this group are the canaries' },
        batch: amount,
        maxFail: amount,
        fetchConcurrency: { type: 'integer', minimum: 1, maximum: 1000 },
      },
    },
    train: {
      type: 'object',
      additionalProperties: false,
      properties: {
        autoApprove: { type: 'boolean' },
        approvers: {
          type: 'array',
          items: { type: 'string' },
          description: 'who may approve a station; empty lets anyone',
        },
        // Lower than the other intervals: the polls run inside one activity bounded by verifyTimeoutMs, they re-ask
        // only the wikis not yet confirmed, and they sit on the path of every station move.
        verifyEveryMs: ms(
          'pause between live-version checks',
          100,
          'the polls stay inside one activity and re-ask only unconfirmed wikis, so short pauses are cheap; less than 100 only hammers the app servers',
        ),
        verifyTimeoutMs: ms(
          'how long the live version may take to show',
          1000,
          'restarted app servers need time to answer',
        ),
        watchMs: ms('how long to watch errors after each station (0: no watch)'),
        watchIntervalMs: interval('time between error measurements during the watch'),
        watchMaxErrorRate: {
          type: 'number',
          minimum: 0,
          maximum: 1,
          description: "the moved group's error-rate ceiling during the watch, 0 to 1",
        },
        watchMaxRatio: {
          type: 'number',
          minimum: 1,
          description: 'the moved group may have at most this many times its error rate before the move',
        },
        watchMinRequests: {
          type: 'integer',
          minimum: 0,
          description:
            'fewer requests than this over the watch cannot pass: it holds for a person (a thin window before the move only makes the comparison less sensitive)',
        },
        watchNewErrorMin: {
          type: 'integer',
          minimum: 1,
          description: 'an error signature never seen before the move fails the watch once seen this many times',
        },
        watchJudging: {
          type: 'object',
          additionalProperties: false,
          description:
            'how the watch judges: method, alpha, minEffect, ceiling, consecutiveErrorLimit, latency, trafficFloor',
          properties: judging,
        },
        codeService: { type: 'string' },
        configService: { type: 'string' },
        gate: {
          enum: ['approval', 'window'],
          description:
            'approval (a person approves each station) or window (a station moves by itself inside its deploy window when nothing blocks it)',
        },
        windows: {
          type: 'object',
          additionalProperties: false,
          description: 'timezone plus a window for each station',
          properties: {
            timezone: { type: 'string', minLength: 1, description: 'an IANA timezone such as America/Los_Angeles' },
            testwikis: deployWindow,
            group0: deployWindow,
            group1: deployWindow,
            group2: deployWindow,
          },
        },
        securityPatches: {
          type: 'string',
          description:
            'folder of <version>/*.patch (git format-patch) applied with git am at stage; relative to the signalbox home',
        },
        blockers: {
          type: 'object',
          additionalProperties: false,
          required: ['github'],
          description: 'where train blockers are tracked: github, with pollMs',
          properties: {
            pollMs: interval('how often open blockers are checked while they hold the train'),
            github: {
              type: 'object',
              additionalProperties: false,
              required: ['repository'],
              description:
                'repository (owner/name), apiUrl (default https://api.github.com) and tokenEnv (the variable holding the token)',
              properties: {
                repository: {
                  type: 'string',
                  pattern: '^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$',
                  description: 'owner/name of the repository holding the train blocker issues',
                },
                apiUrl: { type: 'string' },
                tokenEnv: { type: 'string' },
              },
            },
          },
        },
      },
    },
    notify: {
      type: 'object',
      additionalProperties: false,
      description: 'sal, irc, slack, email',
      properties: {
        sal: { type: 'string', description: 'the Server Admin Log file; relative to the signalbox home' },
        irc: {
          type: 'object',
          additionalProperties: false,
          required: ['server', 'channel'],
          properties: {
            server: hostPort,
            channel: {
              type: 'string',
              pattern: '^#',
              description: 'a channel such as "#wikimedia-operations" (quoted)',
            },
            nick: { type: 'string', pattern: '^[A-Za-z][A-Za-z0-9_-]{0,15}$', description: 'an IRC nick' },
          },
        },
        slack: {
          type: 'object',
          additionalProperties: false,
          required: ['webhookUrl'],
          properties: { webhookUrl: { type: 'string', description: 'the incoming-webhook URL, or {{sandboxSlack}}' } },
        },
        email: {
          type: 'object',
          additionalProperties: false,
          required: ['smtp', 'from', 'to'],
          properties: {
            smtp: hostPort,
            from: { type: 'string' },
            to: { type: 'array', minItems: 1, items: { type: 'string' }, description: 'a list of addresses' },
          },
        },
        private: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          description:
            "where embargoed news goes (a security patch that does not apply): email (a list of addresses, sent through notify.email's server) and/or ircChannel (a private channel on notify.irc's server)",
          properties: {
            email: {
              type: 'array',
              minItems: 1,
              items: { type: 'string' },
              description: "private addresses, such as the security team's list",
            },
            ircChannel: {
              type: 'string',
              pattern: '^#',
              description: 'a private channel such as "#mediawiki-security" (quoted)',
            },
          },
        },
      },
    },
    forge: {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      maxProperties: 1,
      description:
        'where the repositories live when not in the local git forge: gerrit (url, user, passwordEnv, mergeTimeoutMs) or github (owner, apiUrl, tokenEnv)',
      properties: {
        gerrit: {
          type: 'object',
          additionalProperties: false,
          required: ['url'],
          properties: {
            url: {
              type: 'string',
              pattern: '^https?://',
              description: 'the Gerrit web URL, such as https://gerrit.example.org/',
            },
            user: { type: 'string', description: 'the account signalbox reviews and submits as' },
            passwordEnv: {
              type: 'string',
              description: "the environment variable holding that account's HTTP password",
            },
            mergeTimeoutMs: {
              type: 'integer',
              minimum: 1000,
              description: 'how long to wait for a submitted change to be MERGED, in ms',
            },
          },
        },
        github: {
          type: 'object',
          additionalProperties: false,
          required: ['owner'],
          properties: {
            owner: {
              type: 'string',
              pattern: '^[A-Za-z0-9_.-]+$',
              description: 'the organisation that owns the mediawiki and mediawiki-config repositories',
            },
            apiUrl: { type: 'string', description: 'the REST API root, https://api.github.com by default' },
            tokenEnv: {
              type: 'string',
              description: 'the environment variable holding a token that may push and merge',
            },
          },
        },
      },
    },
    roadmap: {
      type: 'object',
      additionalProperties: false,
      required: ['api', 'page'],
      description: 'the roadmap wiki page: api (api.php URL), page, user, passwordEnv',
      properties: {
        api: { type: 'string', description: "the wiki's api.php URL, or {{sandboxWiki}}" },
        page: { type: 'string', minLength: 1 },
        user: { type: 'string', description: 'a bot-password user such as Signalbox@train' },
        passwordEnv: { type: 'string', description: 'the environment variable holding the bot password' },
      },
    },
  },
} as const;
