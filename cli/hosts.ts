// signalbox hosts: every host's state, read from the hosts themselves.
import type { Command } from 'commander';
import { createHostActivities } from '../activities/hosts';
import { config, print } from './common';

export function registerHosts(program: Command): void {
  program
    .command('hosts')
    .description("every host's state: the release of each service, previous, last stable, by whom and which run")
    .option('--json')
    .action(async (opts, cmd) => {
      const cfg = config(cmd);
      const hosts = await createHostActivities(cfg).describeHosts();
      print(opts.json, hosts, () =>
        hosts
          .map((h) => {
            const services = Object.entries(h.services).map(([name, s]) =>
              'error' in s
                ? `  ${name}: ${s.error}`
                : `  ${name}: ${s.state.current ?? '-'} (previous ${s.state.previous ?? '-'}, stable ${s.state.lastStable ?? '-'}) by ${s.state.deployedBy ?? '-'} in ${s.state.runId ?? '-'} at ${s.state.deployedAt ?? '-'}`,
            );
            return [
              `${h.host} ${h.address} [${h.groups.join(',')}] ${h.pooled === false ? 'DEPOOLED' : 'pooled'}`,
              ...services,
            ].join('\n');
          })
          .join('\n'),
      );
    });
}
