// The sandbox over real OpenSSH, for tests and benchmarks (root only): one sshd per host on the host's own loopback address (each with its own host key),
// an rsync daemon serving the staged releases, and an unprivileged deploy user who owns the hosts' folders.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fleetFile, type SandboxFleetFile } from '../activities/inventory';
import { freePort } from './fleet';
import { portOpen } from '../tools/temporal-runtime';
import { findTool } from '../tools/setup';

export const DEPLOY_USER = 'sbdeploy';

export interface SshFleet {
  user: string;
  knownHosts: string;
  privateKey: string;
  rsyncSource: string;
  sshPort: number;
  hostKeys: string[];
  stop(): void;
}

function tool(command: string, paths: string[]): string {
  const found = findTool({ command, paths, debianPackage: '', why: '' });
  if (!found)
    throw new Error(
      `${command} is missing; run \`npm test\` (its setup installs openssh-server and rsync) or apt-get install openssh-server rsync`,
    );
  return found;
}

/** Runs as root in CI; then a real unprivileged user is made. Otherwise the current user stands in. */
function deployUser(): string {
  if (process.getuid?.() !== 0) return os.userInfo().username;
  try {
    execFileSync('id', [DEPLOY_USER], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--create-home', '--shell', '/bin/sh', DEPLOY_USER]);
  }
  // useradd leaves the account locked ("!"), which sshd refuses even for key logins; "*" only bars passwords.
  execFileSync('usermod', ['-p', '*', DEPLOY_USER]);
  return DEPLOY_USER;
}

export async function startSshFleet(home: string): Promise<SshFleet> {
  const sshd = tool('sshd', ['/usr/sbin/sshd']);
  const keygen = tool('ssh-keygen', ['/usr/bin/ssh-keygen']);
  const rsync = tool('rsync', ['/usr/bin/rsync']);
  const user = deployUser();
  const dir = path.join(home, 'ssh');
  fs.mkdirSync(dir, { recursive: true });
  fs.mkdirSync('/run/sshd', { recursive: true });
  const privateKey = path.join(dir, 'deploy_key');
  execFileSync(keygen, ['-q', '-t', 'ed25519', '-N', '', '-C', 'signalbox-test', '-f', privateKey]);
  const authorizedKeys = path.join(dir, 'authorized_keys');
  fs.copyFileSync(`${privateKey}.pub`, authorizedKeys);
  fs.chmodSync(authorizedKeys, 0o644);

  const fleet: SandboxFleetFile = JSON.parse(fs.readFileSync(fleetFile(home), 'utf8'));
  const sshPort = await freePort();
  const children: ChildProcess[] = [];
  const knownHostLines: string[] = [];
  const hostKeys: string[] = [];
  for (const host of fleet.hosts) {
    const hostKey = path.join(dir, `host_${host.name}`);
    execFileSync(keygen, ['-q', '-t', 'ed25519', '-N', '', '-C', host.name, '-f', hostKey]);
    hostKeys.push(hostKey);
    const [type, key] = fs.readFileSync(`${hostKey}.pub`, 'utf8').trim().split(/\s+/);
    knownHostLines.push(`[${host.address}]:${sshPort} ${type} ${key}`);
    const config = path.join(dir, `sshd_${host.name}.conf`);
    fs.writeFileSync(
      config,
      [
        `Port ${sshPort}`,
        `ListenAddress ${host.address}`,
        `HostKey ${hostKey}`,
        `PidFile ${path.join(dir, `sshd_${host.name}.pid`)}`,
        `AuthorizedKeysFile ${authorizedKeys}`,
        'StrictModes no',
        'UsePAM no',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PermitRootLogin no',
        `AllowUsers ${user}`,
        'LogLevel ERROR',
        '',
      ].join('\n'),
    );
    const child = spawn(sshd, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', () => undefined);
    children.push(child);
    host.transport = 'ssh';
    host.sshPort = sshPort;
  }
  const knownHosts = path.join(dir, 'known_hosts');
  fs.writeFileSync(knownHosts, `${knownHostLines.join('\n')}\n`);

  const rsyncPort = await freePort();
  const rsyncConfig = path.join(dir, 'rsyncd.conf');
  fs.writeFileSync(
    rsyncConfig,
    [
      `pid file = ${path.join(dir, 'rsyncd.pid')}`,
      'use chroot = no',
      '[releases]',
      `  path = ${fleet.stagingDir}`,
      '  read only = yes',
      ...(process.getuid?.() === 0 ? ['  uid = root', '  gid = root'] : []),
      '',
    ].join('\n'),
  );
  const daemon = spawn(
    rsync,
    ['--daemon', '--no-detach', `--config=${rsyncConfig}`, `--port=${rsyncPort}`, '--address=127.0.0.1'],
    { stdio: 'ignore' },
  );
  children.push(daemon);

  // The deploy user owns the services on its hosts, and nothing else; the hosts' parents must be traversable.
  for (let d = path.join(home, 'sandbox', 'hosts'); d.startsWith(home); d = path.dirname(d)) fs.chmodSync(d, 0o755);
  for (const host of fleet.hosts) execFileSync('chown', ['-R', `${user}:`, host.root]);
  fs.writeFileSync(fleetFile(home), JSON.stringify(fleet, null, 2));

  for (let waited = 0; ; waited += 100) {
    const open = await Promise.all([
      ...fleet.hosts.map((h) => portOpen(h.address, sshPort)),
      portOpen('127.0.0.1', rsyncPort),
    ]);
    if (open.every(Boolean)) break;
    if (waited > 20_000) throw new Error(`sshd or rsyncd did not listen within 20 s; see ${dir}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    user,
    knownHosts,
    privateKey,
    rsyncSource: `rsync://127.0.0.1:${rsyncPort}/releases`,
    sshPort,
    hostKeys,
    stop: () => children.forEach((c) => c.kill('SIGTERM')),
  };
}

/** The config changes that point a sandbox at its SSH fleet. */
export function sshConfig(raw: any, ssh: SshFleet): void {
  raw.fleet.ssh = {
    user: ssh.user,
    privateKey: ssh.privateKey,
    knownHosts: ssh.knownHosts,
    connectTimeoutMs: 5000,
    commandTimeoutMs: 60_000,
  };
  raw.fleet.rsyncSource = ssh.rsyncSource;
}
