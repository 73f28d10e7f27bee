// What a backport is asked to ship: changes named the ways people paste them, and the plan that checks them all at
// once and orders them (seed 001: a config change went out ahead of the code it needed). Pure and deterministic:
// the gather activity reads the forge and the hosts, this decides.

/** A change as it is named on the command line. */
export type ChangeRef =
  | { forge: 'gerrit'; number: number; project?: string; patchset?: number }
  | { forge: 'github'; repository: string; number: number };

const GERRIT_PATH = /^(?:\/r)?(?:\/#)?\/c\/(?:(.+?)\/\+\/)?(\d+)(?:\/(\d+))?\/?$|^\/r\/(\d+)\/?$|^\/(\d+)\/?$/;

/**
 * A Gerrit change number or any of its URL forms (/r/N, /r/c/N, .../project/+/N, .../project/+/N/patchset), or a
 * GitHub pull request (https://github.com/owner/repo/pull/N or owner/repo#N). Anything else is an error that says
 * which forms are understood.
 */
export function parseChangeRef(text: string): ChangeRef {
  const input = text.trim();
  if (/^\d+$/.test(input)) return { forge: 'gerrit', number: positive(input, text) };
  const short = /^([\w.-]+\/[\w.-]+)#(\d+)$/.exec(input);
  if (short) return { forge: 'github', repository: short[1], number: positive(short[2], text) };
  let url: URL | undefined;
  try {
    url = new URL(input);
  } catch {
    // not a URL: below
  }
  if (url && /^https?:$/.test(url.protocol)) {
    const pull = /^\/([\w.-]+\/[\w.-]+)\/pull\/(\d+)(?:\/.*)?$/.exec(url.pathname);
    if (url.hostname === 'github.com' && pull)
      return { forge: 'github', repository: pull[1], number: positive(pull[2], text) };
    const path = `${url.pathname}${url.hash.replace(/^#/, '')}`.replace(/\/{2,}/g, '/').replace(/\/+$/, '') || '/';
    const gerrit = GERRIT_PATH.exec(path);
    if (gerrit) {
      const [, project, number, patchset, shortR, bare] = gerrit;
      return {
        forge: 'gerrit',
        number: positive(number ?? shortR ?? bare, text),
        ...(project ? { project: decodeURIComponent(project) } : {}),
        ...(patchset ? { patchset: positive(patchset, text) } : {}),
      };
    }
  }
  throw new Error(
    `${JSON.stringify(text)} names no change: give a Gerrit change number (123456) or URL (https://gerrit.example.org/r/123456, /r/c/123456, /r/c/<project>/+/123456, /r/c/<project>/+/123456/2), or a GitHub pull request (https://github.com/<owner>/<repo>/pull/12, <owner>/<repo>#12)`,
  );
}

function positive(digits: string, text: string): number {
  const n = Number(digits);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${JSON.stringify(text)}: ${digits} is not a change number`);
  return n;
}

/** A change as the forge reports it, with what the plan needs. */
export interface ReviewedChange {
  number: number;
  url: string;
  project: string;
  branch: string;
  status: 'open' | 'merged' | 'abandoned';
  workInProgress: boolean;
  subject: string;
  owner: string;
  /** The Change-Id trailer (Gerrit's I...; for a pull request, the one signalbox reads from its body). */
  changeId: string;
  /** What its Depends-On lines name, as written: Change-Ids or change URLs. */
  dependsOn: string[];
  /** The open changes it sits on in git (its relation chain), nearest first. */
  parents: number[];
  /** Task ids from Bug: lines, for the records. */
  tasks: string[];
  /** The current patch set's number. */
  patchset: number;
}

/** Everything the gather activity found: the changes asked for, and every change they pulled in. */
export interface BackportWorld {
  requested: number[];
  /** What the reference given for each requested change also said: its project, the patch set reviewed. */
  asked: Record<number, { project?: string; patchset?: number }>;
  changes: Record<number, ReviewedChange>;
  /** What each Depends-On text (and each requested number) resolved to; empty when nothing carries it. */
  resolved: Record<string, number[]>;
  /** Changes that could not be read, and why (not found, no permission). */
  unreadable: Record<number, string>;
  codeRepo: string;
  configRepo: string;
  configBranch: string;
  /** Code branches that some station runs (wmf/<version>), with those stations. */
  liveBranches: Record<string, string[]>;
  /** Change-Ids of merged changes live on every host that serves what they changed. */
  liveEverywhere: string[];
}

export interface Refusal {
  change: number;
  reason: string;
  /** How the change came in: the requested change first, then each Depends-On or parent step to this one. */
  chain: string[];
}

/** One sync: the changes of one repository and branch, merged together, then deployed together. */
export interface Phase {
  project: string;
  branch: string;
  changes: number[];
}

export interface BackportPlan {
  /** In the order they must go: each phase's dependencies are live before it deploys. */
  phases: Phase[];
  /** Changes in the plan that were merged already: they are deployed, not merged again. */
  alreadyMerged: number[];
  refusals: Refusal[];
}

type Edge = { to: number; how: string };

/** Checks every change at once and orders what may go. Any refusal means nothing is merged. */
export function planBackport(world: BackportWorld): BackportPlan {
  const refusals: Refusal[] = [];
  const refuse = (change: number, reason: string, chain: string[]) => {
    if (!refusals.some((r) => r.change === change && r.reason === reason)) refusals.push({ change, reason, chain });
  };
  const inPlan = new Set<number>();
  const edges = new Map<number, Edge[]>();
  const live = new Set(world.liveEverywhere);

  const visit = (number: number, chain: string[]) => {
    if (inPlan.has(number)) return;
    const change = world.changes[number];
    if (!change) return refuse(number, world.unreadable[number] ?? 'no such change', chain);
    inPlan.add(number);
    const here = [...chain];
    const asked = world.asked[number];
    if (asked?.project && asked.project !== change.project)
      refuse(number, `it is in ${change.project}, not ${asked.project} as its URL says`, here);
    if (asked?.patchset && asked.patchset !== change.patchset && change.status === 'open')
      refuse(
        number,
        `patch set ${asked.patchset} was named, but the change is at patch set ${change.patchset}: look at the new one, then name it`,
        here,
      );
    if (change.status === 'abandoned') refuse(number, 'it is abandoned', here);
    if (change.workInProgress && change.status === 'open') refuse(number, 'it is work in progress', here);
    if (change.project === world.configRepo) {
      if (change.branch !== world.configBranch)
        refuse(number, `it targets ${change.branch}; config backports go to ${world.configBranch}`, here);
    } else if (change.project === world.codeRepo) {
      if (!world.liveBranches[change.branch])
        refuse(
          number,
          `it targets ${change.branch}, which no station runs (live: ${Object.keys(world.liveBranches).join(', ') || 'none'})`,
          here,
        );
    } else {
      refuse(number, `it is in ${change.project}, which is neither ${world.codeRepo} nor ${world.configRepo}`, here);
    }
    const out: Edge[] = [];
    edges.set(number, out);
    // Parents in git: an unmerged parent must be asked for in this backport too, or the merge would bring in a
    // change nobody named (or fail on an abandoned one).
    for (const parent of change.parents) {
      const step = [...here, `parent ${parent}`];
      const known = world.changes[parent];
      if (known?.status === 'merged') continue;
      if (!world.requested.includes(parent)) {
        const what = known
          ? `${parent} (${known.subject}) is ${known.status === 'abandoned' ? 'abandoned' : 'not merged'}`
          : `${parent} cannot be read`;
        refuse(number, `it sits on ${what} and not in this backport: add ${parent}, or rebase this change`, step);
        continue;
      }
      out.push({ to: parent, how: 'parent' });
      visit(parent, step);
    }
    for (const text of change.dependsOn) {
      const candidates = world.resolved[text] ?? [];
      const step = [...here, `Depends-On ${text}`];
      if (!candidates.length) {
        refuse(number, `its Depends-On ${text} names no change the forge has`, step);
        continue;
      }
      const satisfied = candidates.some((c) => {
        const dep = world.changes[c];
        return dep?.status === 'merged' && live.has(dep.changeId);
      });
      if (satisfied) continue;
      // Not live: it must ship first, in this backport, on the branch this change will run with.
      const requested = candidates.find((c) => world.requested.includes(c));
      const dependency = requested ?? candidates.find((c) => world.changes[c]?.status !== 'abandoned');
      const dep = dependency === undefined ? undefined : world.changes[dependency];
      if (dependency !== undefined && !dep) {
        refuse(
          number,
          `its Depends-On ${text}: ${world.unreadable[dependency] ?? `change ${dependency} cannot be read`}`,
          step,
        );
        continue;
      }
      if (dependency === undefined || !dep) {
        refuse(number, `its Depends-On ${text} is abandoned`, step);
        continue;
      }
      if (requested === undefined) {
        const where =
          dep.status === 'merged'
            ? `merged but not live on every host it reaches`
            : `not merged (${dep.status}) and not in this backport`;
        refuse(
          number,
          `its Depends-On ${dependency} (${dep.subject}) is ${where}: ship ${dependency} first, or add it to this backport`,
          step,
        );
        continue;
      }
      out.push({ to: dependency, how: `Depends-On ${text}` });
      visit(dependency, step);
    }
  };
  for (const number of world.requested) visit(number, [`${number}`]);

  const order = topologicalOrder(world.requested, inPlan, edges, refuse);
  const phases: Phase[] = [];
  for (const number of order) {
    const change = world.changes[number];
    if (!change) continue;
    const last = phases[phases.length - 1];
    // A change joins the phase before it when that phase is its repository and branch: one sync each.
    if (last && last.project === change.project && last.branch === change.branch) last.changes.push(number);
    else phases.push({ project: change.project, branch: change.branch, changes: [number] });
  }
  const alreadyMerged = order.filter((n) => world.changes[n]?.status === 'merged');
  return { phases: refusals.length ? [] : mergePhases(phases, edges), alreadyMerged, refusals };
}

/** Dependencies first, the requested order kept where nothing forces another; a cycle of any depth is refused. */
function topologicalOrder(
  requested: number[],
  inPlan: Set<number>,
  edges: Map<number, Edge[]>,
  refuse: (change: number, reason: string, chain: string[]) => void,
): number[] {
  const order: number[] = [];
  const state = new Map<number, 'visiting' | 'done'>();
  const walk = (n: number, path: number[]) => {
    if (state.get(n) === 'done') return;
    if (state.get(n) === 'visiting') {
      const cycle = [...path.slice(path.indexOf(n)), n];
      refuse(n, `its dependencies form a cycle: ${cycle.join(' -> ')}`, cycle.map(String));
      return;
    }
    state.set(n, 'visiting');
    for (const edge of edges.get(n) ?? []) if (inPlan.has(edge.to)) walk(edge.to, [...path, n]);
    state.set(n, 'done');
    order.push(n);
  };
  for (const n of requested) walk(n, []);
  return order;
}

/**
 * Fewer syncs: phases of the same repository and branch are joined when nothing between them depends on the
 * earlier one's changes. Kept apart otherwise: a config change waits for the code it needs to be live.
 */
function mergePhases(phases: Phase[], edges: Map<number, Edge[]>): Phase[] {
  const joined: Phase[] = [];
  for (const phase of phases) {
    const target = [...joined].reverse().find((p) => p.project === phase.project && p.branch === phase.branch);
    const between = target ? joined.slice(joined.indexOf(target) + 1) : [];
    const needsBetween = phase.changes.some((c) =>
      (edges.get(c) ?? []).some((e) => between.some((p) => p.changes.includes(e.to))),
    );
    if (target && !needsBetween) target.changes.push(...phase.changes);
    else joined.push({ ...phase, changes: [...phase.changes] });
  }
  return joined;
}

/** "1002 (config: Enable Foo on group1): its Depends-On ... ; pulled in by 1001 -> Depends-On I12ab" */
export function describeRefusal(refusal: Refusal, world: BackportWorld): string {
  const change = world.changes[refusal.change];
  const name = change
    ? `${refusal.change} (${change.project} ${change.branch}: ${change.subject})`
    : `${refusal.change}`;
  const via = refusal.chain.length > 1 ? `; pulled in by ${refusal.chain.join(' -> ')}` : '';
  return `${name}: ${refusal.reason}${via}`;
}
