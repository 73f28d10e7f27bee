// Installs what is missing before `npm start` and `npm test`. A prerequisite it cannot install stops it with a
// message that says how to get it: tests never skip for want of a tool.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { ensureGerritWar } from './gerrit-runtime';
import { ensureTemporalCli, ensureTimeSkippingServer } from './temporal-runtime';

interface Tool {
  command: string;
  /** Where the binary lives when it is not on PATH (sshd sits in /usr/sbin). */
  paths: string[];
  debianPackage: string;
  why: string;
}

const COMMON: Tool[] = [
  { command: 'git', paths: ['/usr/bin/git'], debianPackage: 'git', why: 'the forge repositories' },
  { command: 'rsync', paths: ['/usr/bin/rsync'], debianPackage: 'rsync', why: 'moving releases to hosts' },
  { command: 'curl', paths: ['/usr/bin/curl'], debianPackage: 'curl', why: 'restarting sandbox app servers' },
  {
    command: 'ngircd',
    paths: ['/usr/sbin/ngircd'],
    debianPackage: 'ngircd',
    why: "the sandbox's IRC server for deploy messages",
  },
];

const FOR_TESTS: Tool[] = [
  { command: 'sshd', paths: ['/usr/sbin/sshd'], debianPackage: 'openssh-server', why: 'the SSH transport tests' },
  { command: 'ssh-keygen', paths: ['/usr/bin/ssh-keygen'], debianPackage: 'openssh-client', why: 'test host keys' },
  {
    command: 'prometheus',
    paths: ['/usr/bin/prometheus'],
    debianPackage: 'prometheus',
    why: 'the metric analysis tests',
  },
  {
    command: 'java',
    paths: ['/usr/bin/java'],
    debianPackage: 'openjdk-17-jre-headless',
    why: 'the Gerrit forge tests',
  },
];

export function findTool(tool: Tool): string | null {
  for (const dir of (process.env.PATH ?? '').split(':'))
    if (fs.existsSync(`${dir}/${tool.command}`)) return `${dir}/${tool.command}`;
  return tool.paths.find((p) => fs.existsSync(p)) ?? null;
}

export function runSetup(forTests: boolean, say: (line: string) => void = console.log): void {
  const tools = forTests ? [...COMMON, ...FOR_TESTS] : COMMON;
  const missing = tools.filter((t) => !findTool(t));
  if (missing.length) {
    const packages = [...new Set(missing.map((t) => t.debianPackage))];
    const isRoot = process.getuid?.() === 0;
    const hasApt = fs.existsSync('/usr/bin/apt-get');
    if (isRoot && hasApt) {
      say(
        `setup: installing ${packages.join(' ')} with apt-get (${missing.map((t) => `${t.command}: ${t.why}`).join('; ')})`,
      );
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
      const install = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], {
        stdio: 'inherit',
        env,
      });
      if (install.status !== 0)
        throw new Error(`apt-get install ${packages.join(' ')} failed; install them by hand and run again`);
    } else {
      throw new Error(
        `missing: ${missing.map((t) => `${t.command} (${t.why})`).join(', ')}. Install the Debian packages ${packages.join(' ')} ` +
          `(sudo apt-get install ${packages.join(' ')}), or your system's equivalents, then run again.`,
      );
    }
  }
  const cli = ensureTemporalCli(say);
  say(`setup: temporal CLI at ${cli}`);
  if (forTests) {
    say(`setup: time-skipping test server at ${ensureTimeSkippingServer(say)}`);
    say(`setup: Gerrit war at ${ensureGerritWar(say)}`);
  }
}
