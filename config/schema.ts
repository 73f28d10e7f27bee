// The schema of signalbox.yml. Every property carries a `description`, which doubles as the "fix" in errors.

const amount = { type: 'string', pattern: '^(\\d+|\\d+(\\.\\d+)?%)$', description: 'a count such as "3" or a percentage such as "10%" (quoted)' };
const templated = { type: 'string', minLength: 1, description: 'text; {{host}}, {{address}}, {{port}}, {{group}}, {{version}}, {{release}} are filled in' };
const ms = (what: string) => ({ type: 'integer', minimum: 0, description: `${what}, in milliseconds` });

const check = {
  type: 'object',
  description: 'exactly one of tcp, http, command, logScan, with optional name and timeoutMs',
  additionalProperties: false,
  properties: {
    name: { type: 'string' },
    timeoutMs: ms('how long one attempt may take'),
    attempts: { type: 'integer', minimum: 1, maximum: 60, description: 'attempts before the check fails (1 to 60)' },
    intervalMs: ms('pause between attempts'),
    groups: { type: 'array', items: { type: 'string' }, description: 'run only on hosts in these groups' },
    tcp: { type: 'object', additionalProperties: false, required: ['port'], properties: { port: { type: ['integer', 'string'], description: 'a port number or "{{port}}"' } } },
    http: {
      type: 'object',
      additionalProperties: false,
      required: ['url'],
      description: 'url, with optional hostHeader, status (default 200) and body (text that must appear)',
      properties: { url: templated, hostHeader: templated, status: { type: 'integer' }, body: templated },
    },
    command: { type: 'array', minItems: 1, items: templated, description: 'an argv list run on the host; exit 0 passes' },
    logScan: {
      type: 'object',
      additionalProperties: false,
      required: ['file', 'pattern'],
      description: 'file on the host and a pattern; any new matching line since the switch fails the check',
      properties: { file: templated, pattern: { type: 'string' }, ignore: { type: 'array', items: { type: 'string' } } },
    },
  },
  oneOf: [{ required: ['tcp'] }, { required: ['http'] }, { required: ['command'] }, { required: ['logScan'] }],
};

const analysis = {
  type: 'object',
  additionalProperties: false,
  description: 'metric analysis of the canaries against the rest of the fleet',
  properties: {
    source: { enum: ['prometheus', 'scrape'], description: 'prometheus (query its HTTP API) or scrape (read the hosts\' /metrics directly)' },
    prometheusUrl: { type: 'string', description: 'base URL of Prometheus, such as http://127.0.0.1:9090' },
    intervalMs: ms('time between measurements'),
    measurements: { type: 'integer', minimum: 1, description: 'how many measurements to take' },
    failureLimit: { type: 'integer', minimum: 0, description: 'failed measurements tolerated' },
    maxErrorRate: { type: 'number', minimum: 0, maximum: 1, description: 'absolute error-rate ceiling for the canaries, 0 to 1' },
    maxRatioToBaseline: { type: 'number', minimum: 1, description: 'canary error rate may be at most this many times the baseline' },
    minRequests: { type: 'integer', minimum: 0, description: 'fewer canary requests than this in a measurement is inconclusive' },
  },
};

const service = {
  type: 'object',
  additionalProperties: false,
  required: ['link'],
  description: 'a deployable service: link, restart, keep, checks, analysis',
  properties: {
    link: { type: 'string', pattern: '^[A-Za-z0-9._{}-]+$', description: 'the symlink switched on activation: "current", or "php-{{version}}"' },
    restart: { type: 'array', items: templated, description: 'argv run on the host after the switch' },
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
    name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9.-]*$', description: 'a host name of letters, digits, dots and dashes' },
    address: { type: 'string', description: 'IP address or DNS name' },
    port: { type: 'integer', description: 'the app server port' },
    root: { type: 'string', description: 'absolute folder on the host that holds the services' },
    groups: { type: 'array', items: { type: 'string' }, description: 'groups this host belongs to, such as [appserver, canary]' },
    transport: { enum: ['local', 'ssh'], description: 'local (this machine) or ssh' },
    sshPort: { type: 'integer' },
    pool: { type: 'string', description: 'load-balancer pool' },
  },
};

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['services'],
  properties: {
    temporal: {
      type: 'object',
      additionalProperties: false,
      properties: {
        address: { type: 'string', pattern: '^[^:\\s]+:\\d+$', description: 'host:port of the Temporal frontend, such as 127.0.0.1:7233' },
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
            trafficPerSecond: { type: 'number', minimum: 0, description: 'requests per second from the traffic generator' },
          },
        },
        hosts: { type: 'array', items: host },
        rsyncSource: { type: 'string', description: 'where hosts pull releases: rsync://deploy.example:873/releases, or a folder' },
        ssh: {
          type: 'object',
          additionalProperties: false,
          properties: {
            user: { type: 'string' },
            privateKey: { type: 'string', description: 'path to the private key; the SSH agent is used when absent' },
            knownHosts: { type: 'string', description: 'path to a known_hosts file; unknown or changed keys are refused' },
            connectTimeoutMs: ms('SSH connect timeout'),
            commandTimeoutMs: ms('timeout for one command'),
          },
        },
        loadBalancer: { type: 'string', description: 'base URL of the load-balancer API, such as http://127.0.0.1:9400' },
      },
    },
    services: { type: 'object', additionalProperties: service, minProperties: 1 },
    rollout: {
      type: 'object',
      additionalProperties: false,
      properties: {
        canary: { anyOf: [amount, { type: 'null' }] },
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
        approvers: { type: 'array', items: { type: 'string' }, description: 'who may approve a station; empty lets anyone' },
        verifyEveryMs: ms('pause between live-version checks'),
        verifyTimeoutMs: ms('how long the live version may take to show'),
        watchMs: ms('how long to watch errors after each station'),
        watchIntervalMs: ms('time between error measurements during the watch'),
        watchMaxErrorRate: { type: 'number', minimum: 0, maximum: 1, description: "the moved group's error-rate ceiling during the watch, 0 to 1" },
        watchMaxRatio: { type: 'number', minimum: 1, description: 'the moved group may have at most this many times its error rate before the move' },
        watchMinRequests: { type: 'integer', minimum: 0, description: 'fewer requests than this in a measurement decides nothing' },
        codeService: { type: 'string' },
        configService: { type: 'string' },
      },
    },
  },
} as const;
