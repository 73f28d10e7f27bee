// Which hosts exist and how to reach them: the config's host list, or the sandbox fleet's own description.
import fs from 'node:fs';
import path from 'node:path';
import type { HostSpec, SignalboxConfig } from '../config/load';
import { LocalTransport, type Transport } from './transport';
import { SshTransport } from './ssh';
import { LocalGitForge, type Forge } from './forge';
import { GerritForge } from './gerrit';
import { GitHubForge } from './github';

export interface Inventory {
  hosts: HostSpec[];
  /** Extra template values, such as the sandbox's control URL. */
  vars: Record<string, string>;
  loadBalancer?: string;
  /** Where hosts pull a release from: `${rsyncSource}/${service}/${release}`. */
  rsyncSource: string;
  stagingDir: string;
  reposDir: string;
}

export interface SandboxFleetFile {
  hosts: HostSpec[];
  controlUrl: string;
  reposDir: string;
  stagingDir: string;
  trafficPerSecond: number;
  /** The background share of requests that fail, per wiki group; fleets made before it get 0.3% everywhere. */
  errorRate?: Partial<Record<string, number>>;
  /** Fleet-wide bursts of background errors; absent means on. */
  bursts?: boolean;
  /** The seed of the server's random draws (traffic, errors, latency); fleets made before it get a fresh one. */
  seed?: number;
  /** Where the sandbox keeps train records: mail, IRC, a Slack-style webhook and the roadmap wiki. */
  records?: SandboxRecords;
}

export interface SandboxRecords {
  smtp: string;
  irc?: string;
  slackWebhook: string;
  wikiApi: string;
  /** The sandbox wiki's bot password for the roadmap page. */
  wikiPassword: string;
}

export function sandboxDir(home: string): string {
  return path.join(home, 'sandbox');
}

export function fleetFile(home: string): string {
  return path.join(sandboxDir(home), 'fleet.json');
}

export function loadInventory(config: SignalboxConfig): Inventory {
  const stagingDir = path.join(config.home, 'staging');
  if (config.fleet.hosts) {
    return {
      hosts: config.fleet.hosts,
      vars: {},
      loadBalancer: config.fleet.loadBalancer,
      rsyncSource: config.fleet.rsyncSource ?? stagingDir,
      stagingDir,
      reposDir: path.join(config.home, 'repos'),
    };
  }
  let fleet: SandboxFleetFile;
  try {
    fleet = JSON.parse(fs.readFileSync(fleetFile(config.home), 'utf8'));
  } catch {
    throw new Error(`no sandbox fleet in ${sandboxDir(config.home)}; run \`signalbox sandbox up\` first`);
  }
  return {
    hosts: fleet.hosts,
    vars: {
      sandboxControl: fleet.controlUrl,
      ...(fleet.records && {
        sandboxSmtp: fleet.records.smtp,
        sandboxSlack: fleet.records.slackWebhook,
        sandboxWiki: fleet.records.wikiApi,
        sandboxWikiPassword: fleet.records.wikiPassword,
      }),
      ...(fleet.records?.irc && { sandboxIrc: fleet.records.irc }),
    },
    loadBalancer: config.fleet.loadBalancer ?? fleet.controlUrl,
    rsyncSource: config.fleet.rsyncSource ?? fleet.stagingDir,
    stagingDir: fleet.stagingDir,
    reposDir: fleet.reposDir,
  };
}

export function forgeFor(config: SignalboxConfig, inventory?: Inventory): Forge {
  if (config.forge?.gerrit) return new GerritForge(config.forge.gerrit, path.join(config.home, 'gerrit-mirror'));
  if (config.forge?.github) return new GitHubForge(config.forge.github);
  return new LocalGitForge((inventory ?? loadInventory(config)).reposDir);
}

const sshTransports = new Map<string, SshTransport>();

/** One transport per host, reused across calls so an SSH connection serves a whole activity. */
export function transportFor(host: HostSpec, config: SignalboxConfig): Transport {
  if (host.transport === 'local') return new LocalTransport(host.name, config.fleet.ssh.commandTimeoutMs);
  const key = `${host.name}@${host.address}:${host.sshPort ?? 22}`;
  let transport = sshTransports.get(key);
  if (!transport) {
    const ssh = config.fleet.ssh;
    if (!ssh.knownHosts)
      throw new Error('fleet.ssh.knownHosts is required for SSH hosts: signalbox never trusts an unknown host key');
    transport = new SshTransport({
      host: host.name,
      address: host.address,
      port: host.sshPort ?? 22,
      user: ssh.user ?? process.env.USER ?? 'deploy',
      knownHostsFile: ssh.knownHosts,
      privateKeyFile: ssh.privateKey,
      connectTimeoutMs: ssh.connectTimeoutMs,
      commandTimeoutMs: ssh.commandTimeoutMs,
    });
    sshTransports.set(key, transport);
  }
  return transport;
}

export function closeTransports(): void {
  for (const t of sshTransports.values()) t.close();
  sshTransports.clear();
}

export function fill(template: string, vars: Record<string, string | number | undefined>): string {
  return template.replace(/\{\{\s*(\w+)\s*\}\}/g, (whole, name: string) => {
    const value = vars[name];
    if (value === undefined)
      throw new Error(`template ${JSON.stringify(template)} uses {{${name}}}, which is not known here`);
    return String(value);
  });
}

export function templateVars(
  host: HostSpec,
  inventory: Inventory,
  extra: Record<string, string> = {},
): Record<string, string | number | undefined> {
  return {
    host: host.name,
    address: host.address,
    port: host.port,
    group: host.groups.join(','),
    root: host.root,
    ...inventory.vars,
    ...extra,
  };
}
