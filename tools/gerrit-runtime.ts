// A real Gerrit for the tests: the release war from Maven Central (3.9.4, the newest that Maven Central serves to
// this machine; 3.10.x answers 404 there), a dev-mode site made with `init --batch --dev`, and the daemon on a free
// port. Dev mode makes user admin with HTTP password "secret".
import { execFile, spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { toolsDir } from './temporal-runtime';

const run = promisify(execFile);

export const GERRIT_VERSION = '3.9.4';
const GERRIT_WAR_URL = `https://repo1.maven.org/maven2/com/google/gerrit/gerrit-war/${GERRIT_VERSION}/gerrit-war-${GERRIT_VERSION}.war`;
/** Pinned at first download, since this mirror of Maven Central serves no .sha1 for the war. */
const GERRIT_WAR_SHA1 = '756e09e1d7693f00d269997919c9f3f0872b1dfb';

export function ensureGerritWar(say: (line: string) => void = console.log): string {
  const war = path.join(toolsDir(), `gerrit-${GERRIT_VERSION}.war`);
  const sha1 = (file: string) => crypto.createHash('sha1').update(fs.readFileSync(file)).digest('hex');
  if (fs.existsSync(war) && sha1(war) === GERRIT_WAR_SHA1) return war;
  fs.mkdirSync(toolsDir(), { recursive: true });
  say(`gerrit: downloading ${GERRIT_WAR_URL}`);
  const partial = `${war}.part`;
  const got = spawnSync('curl', ['-fsSL', '--retry', '3', '--max-time', '600', '-o', partial, GERRIT_WAR_URL], {
    encoding: 'utf8',
  });
  if (got.status !== 0)
    throw new Error(
      `could not download the Gerrit war from Maven Central (${got.stderr.trim()}); put gerrit-${GERRIT_VERSION}.war in ${toolsDir()} by hand`,
    );
  if (sha1(partial) !== GERRIT_WAR_SHA1)
    throw new Error(`the downloaded Gerrit war has sha1 ${sha1(partial)}, not ${GERRIT_WAR_SHA1}; refusing to run it`);
  fs.renameSync(partial, war);
  return war;
}

export function javaVersion(): number | null {
  const out = spawnSync('java', ['-version'], { encoding: 'utf8' });
  const match = /version "(\d+)/.exec(`${out.stderr}${out.stdout}`);
  return match ? Number(match[1]) : null;
}

export interface RunningGerrit {
  url: string;
  user: string;
  password: string;
  stop(): Promise<void>;
}

export async function startGerrit(site: string, port: number): Promise<RunningGerrit> {
  const war = ensureGerritWar(() => undefined);
  const java = javaVersion();
  if (!java || java < 11 || java > 17)
    throw new Error(
      `Gerrit ${GERRIT_VERSION} needs Java 11 or 17 (found ${java ?? 'none'}); install openjdk-17-jre-headless`,
    );
  await run('java', ['-jar', war, 'init', '--batch', '--dev', '--no-auto-start', '--skip-plugins', '-d', site], {
    maxBuffer: 16 * 1024 * 1024,
  });
  const config = path.join(site, 'etc', 'gerrit.config');
  const url = `http://127.0.0.1:${port}/`;
  for (const [key, value] of [
    ['httpd.listenUrl', url],
    ['sshd.listenAddress', 'off'],
    ['gerrit.canonicalWebUrl', url],
    ['container.heapLimit', '512m'],
  ]) {
    await run('git', ['config', '-f', config, key, value]);
  }
  const log = fs.openSync(path.join(site, 'daemon.log'), 'a');
  const daemon = spawn('java', ['-jar', war, 'daemon', '-d', site, '--console-log'], { stdio: ['ignore', log, log] });
  const exited = new Promise<void>((resolve) => daemon.once('exit', () => resolve()));
  const deadline = Date.now() + 120_000;
  for (;;) {
    const up = await fetch(`${url}changes/`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) break;
    if (daemon.exitCode !== null || Date.now() > deadline) {
      daemon.kill('SIGKILL');
      throw new Error(`Gerrit did not answer on ${url}; see ${path.join(site, 'daemon.log')}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  return {
    url,
    user: 'admin',
    password: 'secret',
    async stop() {
      daemon.kill('SIGTERM');
      const timer = setTimeout(() => daemon.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
