// What the engine does on one host, as fixed POSIX sh scripts that take their inputs as arguments. The same
// scripts run locally for the sandbox and over SSH for real hosts, so the sandbox exercises production's code.
//
// Layout of a service on a host:
//   <root>/<service>/revs/<release-id>/   one folder per release, never modified after it is verified
//   <root>/<service>/<link>               symlink to revs/<release-id>, switched atomically by rename
//   <root>/<service>/state.json           current, previous, last stable; when, by whom, by which run
import { HostError, type Transport } from './transport';
import { checkReleaseId, checkServiceName } from '../workflows/names';

export interface ServiceState {
  current: string | null;
  previous: string | null;
  lastStable: string | null;
  deployedAt?: string;
  deployedBy?: string;
  runId?: string;
  /** What the switched link pointed at before the last activation: where a rollback of this host goes. */
  replaced?: string | null;
}

export interface ServiceOnHost {
  state: ServiceState;
  links: Record<string, string>;
  revs: string[];
  /** Sizes of the log files asked for, by path. */
  logSizes: Record<string, number>;
}

export const EMPTY_STATE: ServiceState = { current: null, previous: null, lastStable: null };

const hashTree = `find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum | sha256sum | cut -d' ' -f1`;

const SCRIPTS = {
  // Pull a release into revs/, hard-linking unchanged files from the newest release so only changes travel,
  // verify its content hash, and only then give it its final name. Re-running after a crash resumes the rsync.
  fetch: `set -eu
dir="$1/$2"; rel="$3"; src="$4"; want="$5"
[ -d "$dir/revs/$rel" ] && exit 0
mkdir -p "$dir/revs"
part="$dir/revs/.$rel.partial"
newest=""; for r in $(ls -1t "$dir/revs"); do newest="$r"; break; done
# --checksum: size and mtime cannot tell releases apart (git archive stamps every file with the commit time).
if [ -n "$newest" ]; then rsync -a --checksum --delete --link-dest="$dir/revs/$newest" "$src/" "$part/"
else rsync -a --delete "$src/" "$part/"; fi
got=$(cd "$part" && ${hashTree})
if [ "$got" != "$want" ]; then rm -rf "$part"; echo "content hash mismatch for $rel: staged $want, fetched $got" >&2; exit 3; fi
mv "$part" "$dir/revs/$rel"`,

  // Point <link> at a fetched release by renaming a new symlink over the old one, then record the state.
  // Both renames are atomic; re-running with the same arguments gives the same result.
  activate: `set -eu
dir="$1/$2"; rel="$3"; link="$4"; state="$5"
[ -d "$dir/revs/$rel" ] || { echo "release $rel is not on this host; fetch it first" >&2; exit 4; }
ln -sfn "revs/$rel" "$dir/.$link.next"
mv -T "$dir/.$link.next" "$dir/$link"
printf '%s\\n' "$state" > "$dir/.state.json.next"
mv -f "$dir/.state.json.next" "$dir/state.json"`,

  // Undo an activation that created a link which did not exist before.
  unlink: `set -eu
dir="$1/$2"; link="$3"; state="$4"
rm -f "$dir/$link"
printf '%s\\n' "$state" > "$dir/.state.json.next"
mv -f "$dir/.state.json.next" "$dir/state.json"`,

  writeState: `set -eu
dir="$1/$2"; mkdir -p "$dir"
printf '%s\\n' "$3" > "$dir/.state.json.next"
mv -f "$dir/.state.json.next" "$dir/state.json"`,

  // One line per fact, so parsing needs no JSON tool on the host. Builtins where possible: every exec costs
  // a process start, and a fleet-wide rollout reads every host's state more than once. Arguments after the
  // service are log files whose sizes are wanted (so a log scan later sees only what came after).
  read: `dir="$1/$2"; shift 2
[ -f "$dir/state.json" ] && { IFS= read -r s < "$dir/state.json"; printf 'state %s\\n' "$s"; }
[ -d "$dir" ] && find "$dir" -mindepth 1 -maxdepth 1 -type l ! -name '.*' -printf 'link %f %l\\n'
[ -d "$dir/revs" ] && for r in $(ls -1t "$dir/revs"); do printf 'rev %s\\n' "$r"; done
for f in "$@"; do if [ -f "$f" ]; then printf 'log %s %s\\n' "$(wc -c < "$f")" "$f"; else printf 'log 0 %s\\n' "$f"; fi; done
exit 0`,

  prune: `set -eu
dir="$1/$2"; shift 2
for rel in "$@"; do
  for l in "$dir"/*; do [ -L "$l" ] && [ "$(readlink "$l")" = "revs/$rel" ] && { echo "refusing to prune $rel: $l uses it" >&2; exit 5; }; done
  rm -rf "$dir/revs/$rel"
done`,

  logSince: `[ -f "$1" ] || exit 0
tail -c +"$(($2 + 1))" "$1" | head -c 1000000`,
};

function sh(script: keyof typeof SCRIPTS, ...args: string[]): string[] {
  return ['sh', '-c', SCRIPTS[script], `signalbox-${script}`, ...args];
}

async function mustRun(transport: Transport, host: string, argv: string[], what: string, timeoutMs?: number): Promise<string> {
  const result = await transport.run(argv, { timeoutMs });
  if (result.code !== 0) throw new HostError(host, `${what} failed (exit ${result.code}): ${result.stderr.trim() || result.stdout.trim()}`);
  return result.stdout;
}

export async function readService(transport: Transport, host: string, root: string, service: string, logFiles: string[] = []): Promise<ServiceOnHost> {
  const out = await mustRun(transport, host, sh('read', root, checkServiceName(service), ...logFiles), 'reading state');
  const found: ServiceOnHost = { state: { ...EMPTY_STATE }, links: {}, revs: [], logSizes: {} };
  for (const line of out.split('\n')) {
    const [kind, ...rest] = line.split(' ');
    if (kind === 'state') {
      try {
        found.state = { ...EMPTY_STATE, ...JSON.parse(rest.join(' ')) };
      } catch {
        throw new HostError(host, `state.json of ${service} is not valid JSON; inspect ${root}/${service}/state.json`);
      }
    } else if (kind === 'link') found.links[rest[0]] = rest[1];
    else if (kind === 'rev') found.revs.push(rest[0]);
    else if (kind === 'log') found.logSizes[rest.slice(1).join(' ')] = Number(rest[0]) || 0;
  }
  return found;
}

export async function fetchRelease(transport: Transport, host: string, root: string, service: string, release: string, source: string, contentHash: string): Promise<void> {
  await mustRun(transport, host, sh('fetch', root, checkServiceName(service), checkReleaseId(release), source, contentHash), `fetching ${release}`);
}

export async function activateRelease(transport: Transport, host: string, root: string, service: string, release: string, link: string, state: ServiceState): Promise<void> {
  await mustRun(transport, host, sh('activate', root, checkServiceName(service), checkReleaseId(release), link, JSON.stringify(state)), `switching to ${release}`);
}

export async function removeLink(transport: Transport, host: string, root: string, service: string, link: string, state: ServiceState): Promise<void> {
  await mustRun(transport, host, sh('unlink', root, checkServiceName(service), link, JSON.stringify(state)), `removing ${link}`);
}

export async function writeServiceState(transport: Transport, host: string, root: string, service: string, state: ServiceState): Promise<void> {
  await mustRun(transport, host, sh('writeState', root, checkServiceName(service), JSON.stringify(state)), 'writing state');
}

export async function pruneReleases(transport: Transport, host: string, root: string, service: string, releases: string[]): Promise<void> {
  if (releases.length === 0) return;
  await mustRun(transport, host, sh('prune', root, checkServiceName(service), ...releases.map(checkReleaseId)), 'pruning');
}

export async function logSince(transport: Transport, host: string, file: string, offset: number): Promise<string> {
  return mustRun(transport, host, sh('logSince', file, String(offset)), 'reading log');
}

/** Releases older than the newest `keep` that no link uses; revs is newest first. */
export function releasesToPrune(onHost: ServiceOnHost, keep: number): string[] {
  const inUse = new Set(Object.values(onHost.links).map((t) => t.replace(/^revs\//, '')));
  return onHost.revs.slice(keep).filter((r) => !inUse.has(r));
}
