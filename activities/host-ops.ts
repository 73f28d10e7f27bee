// What the engine does on one host, as fixed POSIX sh scripts that take their inputs as arguments. The same
// scripts run locally for the sandbox and over SSH for real hosts, so the sandbox exercises production's code.
//
// Layout of a service on a host:
//   <root>/<service>/revs/<release-id>/   one folder per release, never modified after it is verified
//   <root>/<service>/<link>               symlink to revs/<release-id>, switched atomically by rename
//   <root>/<service>/state.json           current, previous, last stable; when, by whom, by which run
//   <root>/<service>/journal.json         the step the last promote, restore or rollback reached (one JSON line)
//   <root>/<service>/pins/<release-id>    a rollout's run id: fetched by it and not yet switched, so never pruned
//   <root>/<service>/lock                 flock(1)ed for the whole of one promote, rollback or stable mark
//   <root>/<service>/fences/<run>         a rollout run that was rolled back here: its promotes are refused
// Every file the engine relies on after a crash is written to a temporary name, fsynced, renamed over, and the
// directory fsynced (coreutils `sync FILE`), so a power cut leaves either the old or the new version.
import { CommandEnded, HELD_LOCK_FD, HostError, type Held, type Transport } from './transport';
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

/**
 * The steps of an operation in order. `unhealthy` ends a move back whose checks failed on the older release: the
 * host stays there, in the pool, marked for a person; a retry checks it again.
 */
export type JournalStep = 'depooled' | 'switched' | 'restarted' | 'checked' | 'repooled' | 'unhealthy';
export const JOURNAL_STEPS: JournalStep[] = ['depooled', 'switched', 'restarted', 'checked', 'repooled'];

/** A promote moves a link forward; a restore moves it back after failed checks; a rollback on request. */
export type JournalOp = 'promote' | 'restore' | 'rollback';

/**
 * The last step one operation reached on one host for one service. 'depooled' is written just before the depool
 * (a crash in between can only leave a pooled host marked depooled, which is harmless); every other step after it
 * is done. 'repooled' for a release means the host was checked (or restored) there and serves it again.
 */
export interface HostJournal {
  op: JournalOp;
  runId: string;
  /** Where the operation points the link; null when going back removes a link that did not exist before. */
  release: string | null;
  /** What the link pointed at before the operation: a promote's way back, or the release a restore left. */
  replaced: string | null;
  link: string;
  step: JournalStep;
  at: string;
  /** A promote's state.json before it, written back when the host goes back. */
  stateBefore?: ServiceState;
  /** A promote's log sizes before the switch, so a resumed log scan still sees everything after it. */
  logOffsets?: Record<string, number>;
}

export interface ServiceOnHost {
  state: ServiceState;
  links: Record<string, string>;
  revs: string[];
  /** Sizes of the log files asked for, by path. */
  logSizes: Record<string, number>;
  journal: HostJournal | null;
  /** Releases a rollout has fetched and pinned within PIN_FRESH_MINUTES. */
  pins: string[];
}

export const EMPTY_STATE: ServiceState = { current: null, previous: null, lastStable: null };

/** A pin older than a week belongs to a rollout long gone; prune may then take the release. */
export const PIN_FRESH_MINUTES = 7 * 24 * 60;

// put NAME TEXT: writes $dir/NAME durably and atomically (the directory itself is fsynced once, at the end).
// unpin REL RUN: drops the pin of REL if RUN holds it, so a later rollout's pin survives.
const helpers = `put() { { printf '%s\\n' "$2" > "$dir/.$1.next" && sync "$dir/.$1.next" && mv -f "$dir/.$1.next" "$dir/$1"; } || { rm -f "$dir/.$1.next"; return 1; }; }
unpin() { [ -n "$1" ] && [ -f "$dir/pins/$1" ] || return 0; who=""; IFS= read -r who < "$dir/pins/$1" || true; [ "$who" != "$2" ] || rm -f "$dir/pins/$1"; }`;

const hashTree = `find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum | sha256sum | cut -d' ' -f1`;

const SCRIPTS = {
  // Pull a release into revs/, hard-linking unchanged files from the newest release so only changes travel,
  // verify its content hash, and only then give it its final name. Re-running after a crash resumes the rsync.
  // The pin goes first, so a prune running meanwhile keeps the release.
  fetch: `set -eu
dir="$1/$2"; rel="$3"; src="$4"; want="$5"; run="\${6:-}"
mkdir -p "$dir/revs"
[ -z "$run" ] || { mkdir -p "$dir/pins"; printf '%s\\n' "$run" > "$dir/pins/$rel"; }
[ -d "$dir/revs/$rel" ] && exit 0
part="$dir/revs/.$rel.partial"
newest=""; for r in $(ls -1t "$dir/revs"); do newest="$r"; break; done
# --checksum: size and mtime cannot tell releases apart (git archive stamps every file with the commit time).
# A failed transfer (a full disk, say) leaves nothing behind to hold the space; --link-dest makes a refetch cheap.
if [ -n "$newest" ]; then rsync -a --checksum --delete --link-dest="$dir/revs/$newest" "$src/" "$part/" || { rc=$?; rm -rf "$part"; exit $rc; }
else rsync -a --delete "$src/" "$part/" || { rc=$?; rm -rf "$part"; exit $rc; }; fi
got=$(cd "$part" && ${hashTree})
if [ "$got" != "$want" ]; then rm -rf "$part"; echo "content hash mismatch for $rel: staged $want, fetched $got" >&2; exit 3; fi
mv "$part" "$dir/revs/$rel"`,

  // Point <link> at a fetched release by renaming a new symlink over the old one (or remove it when no release is
  // given), then record the state and, when given, the journal step; finally drop the run's pin. Every rename is
  // atomic and made durable; re-running with the same arguments gives the same result.
  activate: `set -eu
dir="$1/$2"; rel="$3"; link="$4"; state="$5"; journal="\${6:-}"; pinned="\${7:-}"; run="\${8:-}"
${helpers}
if [ -n "$rel" ]; then
  [ -d "$dir/revs/$rel" ] || { echo "release $rel is not on this host; fetch it first" >&2; exit 4; }
  ln -sfn "revs/$rel" "$dir/.$link.next"
  mv -T "$dir/.$link.next" "$dir/$link"
else
  rm -f "$dir/$link"
fi
put state.json "$state"
[ -z "$journal" ] || put journal.json "$journal"
sync "$dir"
unpin "$pinned" "$run"`,

  writeState: `set -eu
dir="$1/$2"; mkdir -p "$dir"
${helpers}
put state.json "$3"
sync "$dir"`,

  journal: `set -eu
dir="$1/$2"; pinned="\${4:-}"; run="\${5:-}"
${helpers}
put journal.json "$3"
sync "$dir"
unpin "$pinned" "$run"`,

  unpin: `set -eu
dir="$1/$2"
${helpers}
unpin "$3" "$4"`,

  // One line per fact, so parsing needs no JSON tool on the host. Builtins where possible: every exec costs
  // a process start, and a fleet-wide rollout reads every host's state more than once (so pins are looked at with
  // find only when there is one). Arguments after the service are log files whose sizes are wanted (so a log scan
  // later sees only what came after).
  read: `dir="$1/$2"; shift 2
[ -f "$dir/state.json" ] && { IFS= read -r s < "$dir/state.json"; printf 'state %s\\n' "$s"; }
[ -f "$dir/journal.json" ] && { IFS= read -r j < "$dir/journal.json"; printf 'journal %s\\n' "$j"; }
for p in "$dir/pins"/*; do [ -e "$p" ] && find "$dir/pins" -mindepth 1 -maxdepth 1 -type f -mmin -${PIN_FRESH_MINUTES} -printf 'pin %f\\n'; break; done
[ -d "$dir" ] && find "$dir" -mindepth 1 -maxdepth 1 -type l ! -name '.*' -printf 'link %f %l\\n'
[ -d "$dir/revs" ] && for r in $(ls -1t "$dir/revs"); do printf 'rev %s\\n' "$r"; done
for f in "$@"; do if [ -f "$f" ]; then printf 'log %s %s\\n' "$(wc -c < "$f")" "$f"; else printf 'log 0 %s\\n' "$f"; fi; done
exit 0`,

  // Checks again on the host what the caller chose, so a list computed from an older read cannot remove a release
  // that a link, state.json, the journal or a fresh pin names. Stale pins go. Says what it kept and why.
  prune: `set -eu
dir="$1/$2"; shift 2
[ ! -d "$dir/pins" ] || find "$dir/pins" -mindepth 1 -maxdepth 1 -type f -mmin +${PIN_FRESH_MINUTES} -delete
for rel in "$@"; do
  why=""
  for l in "$dir"/*; do [ -L "$l" ] && [ "$(readlink "$l")" = "revs/$rel" ] && why="$l uses it"; done
  for f in state.json journal.json; do [ -f "$dir/$f" ] && grep -qF "\\"$rel\\"" "$dir/$f" && why="$f names it"; done
  [ -f "$dir/pins/$rel" ] && why="a rollout fetched it and has not switched it yet"
  if [ -n "$why" ]; then echo "kept $rel: $why"; else rm -rf "$dir/revs/$rel"; echo "pruned $rel"; fi
done`,

  // Held for a whole operation on a host's service (see lockService): waits for the lock, says one word, then
  // becomes the shell that runs every command of the operation (Held.run), holding the lock on its descriptor until
  // it reads `exit` or the end of its input, which it reads only between commands. So the lock goes when the
  // operation's channel goes, but never while one of its commands still runs, and no command of the operation runs
  // without it. A rollback fences its run before it waits, so a promote of that run that takes the lock first
  // (flock keeps no queue) is refused all the same. Fences older than a week belong to runs long gone.
  lock: `set -eu
dir="$1/$2"; mode="$3"; fence="\${4:-}"; wait="$5"
mkdir -p "$dir"
if [ -n "$fence" ]; then
  mkdir -p "$dir/fences"
  find "$dir/fences" -mindepth 1 -maxdepth 1 -type f -mmin +${PIN_FRESH_MINUTES} -delete
  [ "$mode" != rollback ] || : > "$dir/fences/$fence"
fi
exec ${HELD_LOCK_FD}>>"$dir/lock"
flock -w "$wait" ${HELD_LOCK_FD} || { echo busy; exit 0; }
if [ "$mode" = promote ] && [ -n "$fence" ] && [ -e "$dir/fences/$fence" ]; then echo fenced; exit 0; fi
echo locked
exec sh`,

  logSince: `[ -f "$1" ] || exit 0
tail -c +"$(($2 + 1))" "$1" | head -c 1000000`,
};

function sh(script: keyof typeof SCRIPTS, ...args: string[]): string[] {
  return ['sh', '-c', SCRIPTS[script], `signalbox-${script}`, ...args];
}

/**
 * How long an operation waits for another on the same host and service to finish, at most. A rollback waits
 * longest: the host must not be left on the release it rolls back, and rollbacks have no deadline of their own.
 */
export const LOCK_WAIT_SECONDS = { promote: 300, mark: 300, rollback: 25 * 60 } as const;

export interface ServiceLock {
  /** busy: another operation held it past the wait; fenced: a rollback of this run came first. */
  outcome: 'locked' | 'fenced' | 'busy';
  /**
   * Reaches the host only under the lock: every command goes to the shell that holds it (see Held.run), and once
   * the lock is gone each refuses with LockLost, running nothing. Only for an outcome of 'locked'.
   */
  transport: Transport;
  /** Resolves if the host still held the lock when it answered (before acting off the host); LockLost otherwise. */
  check(): Promise<void>;
  release(): void;
}

/**
 * Takes the host's lock on a service for one operation. A promote, rollback and stable mark never interleave on a
 * host, even when the workflow that started one died while its activity kept going, or the activity lost its
 * channel to the host: the operation reaches the host only through the lock (ServiceLock.transport). `fence` names
 * the run: a rollback fences it, and a promote of a fenced run is refused, so none lands after the rollback.
 */
export async function lockService(
  transport: Transport,
  host: string,
  root: string,
  service: string,
  mode: 'promote' | 'rollback' | 'mark',
  fence?: string,
): Promise<ServiceLock> {
  const held = await transport
    .hold(
      sh(
        'lock',
        root,
        checkServiceName(service),
        mode,
        fence ? checkFence(fence) : '',
        String(LOCK_WAIT_SECONDS[mode]),
      ),
      { timeoutMs: (LOCK_WAIT_SECONDS[mode] + 60) * 1000 },
    )
    .catch((err: Error) => {
      throw err instanceof CommandEnded
        ? new HostScriptError(host, `taking the lock on ${service}: ${err.message}`)
        : err;
    });
  const outcome = held.line.trim();
  if (outcome !== 'locked') held.release();
  if (outcome === 'locked' || outcome === 'fenced' || outcome === 'busy')
    return { outcome, transport: underLock(held), check: () => held.check(), release: () => held.release() };
  throw new HostScriptError(host, `taking the lock on ${service} said "${outcome}"`);
}

/** A transport whose commands run under a held lock; it holds nothing more itself. */
function underLock(held: Held): Transport {
  return {
    run: (argv, options) => held.run(argv, options),
    hold: () => Promise.reject(new Error('a lock is not taken under another')),
    close: () => undefined,
  };
}

function checkFence(fence: string): string {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(fence)) throw new Error(`not a run id: ${JSON.stringify(fence)}`);
  return fence;
}

/** A host script ran and refused: the host was reached, unlike a transport's own HostError. */
export class HostScriptError extends HostError {}

async function mustRun(
  transport: Transport,
  host: string,
  argv: string[],
  what: string,
  timeoutMs?: number,
): Promise<string> {
  // signalbox's own scripts start nothing that outlives them: under a lock, each keeps it for as long as it runs.
  const result = await transport.run(argv, { timeoutMs, keepsLock: true });
  if (result.code !== 0)
    throw new HostScriptError(
      host,
      `${what} failed (exit ${result.code}): ${result.stderr.trim() || result.stdout.trim()}`,
    );
  return result.stdout;
}

export async function readService(
  transport: Transport,
  host: string,
  root: string,
  service: string,
  logFiles: string[] = [],
): Promise<ServiceOnHost> {
  const out = await mustRun(transport, host, sh('read', root, checkServiceName(service), ...logFiles), 'reading state');
  const found: ServiceOnHost = {
    state: { ...EMPTY_STATE },
    links: {},
    revs: [],
    logSizes: {},
    journal: null,
    pins: [],
  };
  const parsed = <T>(file: string, text: string): T => {
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new HostScriptError(host, `${file} of ${service} is not valid JSON; inspect ${root}/${service}/${file}`);
    }
  };
  for (const line of out.split('\n')) {
    const [kind, ...rest] = line.split(' ');
    if (kind === 'state') found.state = { ...EMPTY_STATE, ...parsed<ServiceState>('state.json', rest.join(' ')) };
    else if (kind === 'journal') found.journal = parsed<HostJournal>('journal.json', rest.join(' '));
    else if (kind === 'pin') found.pins.push(rest[0]);
    else if (kind === 'link') found.links[rest[0]] = rest[1];
    else if (kind === 'rev') found.revs.push(rest[0]);
    else if (kind === 'log') found.logSizes[rest.slice(1).join(' ')] = Number(rest[0]) || 0;
  }
  return found;
}

/** The release a link points at, or null. */
export function linkTarget(onHost: Pick<ServiceOnHost, 'links'>, link: string): string | null {
  return onHost.links[link]?.replace(/^revs\//, '') ?? null;
}

/** The journal when its last operation was on this link (the code service keeps one link per version). */
export function journalFor(onHost: Pick<ServiceOnHost, 'journal'>, link: string): HostJournal | null {
  return onHost.journal?.link === link ? onHost.journal : null;
}

/**
 * Whether the host serves `release` through `link` and is done with it: its journal says the release was checked
 * (or restored) and repooled there. A host with no journal for it (from before journals, or the sandbox's first
 * fleet) counts when the load balancer pools it; `pooled` null means that could not be read.
 */
export function settledOn(
  onHost: Pick<ServiceOnHost, 'links' | 'journal'>,
  link: string,
  release: string,
  pooled: boolean | null,
): boolean {
  if (linkTarget(onHost, link) !== release) return false;
  const journal = journalFor(onHost, link);
  if (journal?.release === release) return journal.step === 'repooled';
  return pooled === true;
}

/** Fetches and verifies a release; with a run id, pins it for that run first so no prune takes it meanwhile. */
export async function fetchRelease(
  transport: Transport,
  host: string,
  root: string,
  service: string,
  release: string,
  source: string,
  contentHash: string,
  pinFor?: string,
): Promise<void> {
  await mustRun(
    transport,
    host,
    sh('fetch', root, checkServiceName(service), checkReleaseId(release), source, contentHash, pinFor ?? ''),
    `fetching ${release}`,
  );
}

/** Optional parts of a switch: the journal step it completes, and the run whose pin on a release it drops. */
export interface SwitchRecord {
  journal?: HostJournal;
  unpin?: { release: string; runId: string };
}

export async function activateRelease(
  transport: Transport,
  host: string,
  root: string,
  service: string,
  release: string,
  link: string,
  state: ServiceState,
  record: SwitchRecord = {},
): Promise<void> {
  await mustRun(
    transport,
    host,
    sh(
      'activate',
      root,
      checkServiceName(service),
      checkReleaseId(release),
      link,
      JSON.stringify(state),
      ...recordArgs(record),
    ),
    `switching to ${release}`,
  );
}

export async function removeLink(
  transport: Transport,
  host: string,
  root: string,
  service: string,
  link: string,
  state: ServiceState,
  record: SwitchRecord = {},
): Promise<void> {
  await mustRun(
    transport,
    host,
    sh('activate', root, checkServiceName(service), '', link, JSON.stringify(state), ...recordArgs(record)),
    `removing ${link}`,
  );
}

function recordArgs(record: SwitchRecord): string[] {
  return [
    record.journal ? JSON.stringify(record.journal) : '',
    record.unpin ? checkReleaseId(record.unpin.release) : '',
    record.unpin?.runId ?? '',
  ];
}

export async function writeServiceState(
  transport: Transport,
  host: string,
  root: string,
  service: string,
  state: ServiceState,
): Promise<void> {
  await mustRun(
    transport,
    host,
    sh('writeState', root, checkServiceName(service), JSON.stringify(state)),
    'writing state',
  );
}

export async function writeJournal(
  transport: Transport,
  host: string,
  root: string,
  service: string,
  journal: HostJournal,
  unpin?: SwitchRecord['unpin'],
): Promise<void> {
  const [, pinned, runId] = recordArgs({ unpin });
  await mustRun(
    transport,
    host,
    sh('journal', root, checkServiceName(service), JSON.stringify(journal), pinned, runId),
    'writing the journal',
  );
}

/** Drops a run's pin on a release; a pin another run wrote since stays. */
export async function unpinRelease(
  transport: Transport,
  host: string,
  root: string,
  service: string,
  release: string,
  runId: string,
): Promise<void> {
  await mustRun(
    transport,
    host,
    sh('unpin', root, checkServiceName(service), checkReleaseId(release), runId),
    'dropping a pin',
  );
}

/** Removes the releases the host itself also finds unused; returns those it removed. */
export async function pruneReleases(
  transport: Transport,
  host: string,
  root: string,
  service: string,
  releases: string[],
): Promise<string[]> {
  if (releases.length === 0) return [];
  const out = await mustRun(
    transport,
    host,
    sh('prune', root, checkServiceName(service), ...releases.map(checkReleaseId)),
    'pruning',
  );
  return out
    .split('\n')
    .filter((l) => l.startsWith('pruned '))
    .map((l) => l.slice('pruned '.length));
}

export async function logSince(transport: Transport, host: string, file: string, offset: number): Promise<string> {
  return mustRun(transport, host, sh('logSince', file, String(offset)), 'reading log');
}

/**
 * Releases older than the newest `keep` that nothing may still need: no link uses them, state.json and the
 * journal do not name them (current, previous, last stable, a way back), and no rollout has pinned them. revs is
 * newest first.
 */
export function releasesToPrune(
  onHost: Pick<ServiceOnHost, 'state' | 'links' | 'revs'> & Partial<Pick<ServiceOnHost, 'journal' | 'pins'>>,
  keep: number,
): string[] {
  const { state, journal } = onHost;
  const named = [
    ...Object.keys(onHost.links).map((link) => linkTarget(onHost, link)),
    state.current,
    state.previous,
    state.lastStable,
    state.replaced,
    journal?.release,
    journal?.replaced,
    journal?.stateBefore?.current,
    journal?.stateBefore?.previous,
    journal?.stateBefore?.lastStable,
    journal?.stateBefore?.replaced,
    ...(onHost.pins ?? []),
  ];
  const needed = new Set(named.filter((r): r is string => !!r));
  return onHost.revs.slice(keep).filter((r) => !needed.has(r));
}
