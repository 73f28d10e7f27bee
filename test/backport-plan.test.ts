// The backport's checks and order, on worlds made to break one rule each (seed 001 among them).
import { describe, expect, it } from 'vitest';
import {
  describeRefusal,
  parseChangeRef,
  planBackport,
  type BackportWorld,
  type ReviewedChange,
} from '../workflows/backport/changes';

describe('change references', () => {
  it('reads a number and every URL form people paste, and refuses anything else saying what it understands', () => {
    expect(parseChangeRef('123456')).toEqual({ forge: 'gerrit', number: 123456 });
    expect(parseChangeRef('https://gerrit.wikimedia.org/r/123456')).toEqual({ forge: 'gerrit', number: 123456 });
    expect(parseChangeRef('https://gerrit.wikimedia.org/r/c/123456/')).toEqual({ forge: 'gerrit', number: 123456 });
    expect(parseChangeRef('https://gerrit.wikimedia.org/r/#/c/123456/')).toEqual({ forge: 'gerrit', number: 123456 });
    expect(parseChangeRef('https://gerrit.wikimedia.org/r/c/operations/mediawiki-config/+/123456')).toEqual({
      forge: 'gerrit',
      number: 123456,
      project: 'operations/mediawiki-config',
    });
    expect(parseChangeRef('http://127.0.0.1:8080/c/mediawiki/+/42/3')).toEqual({
      forge: 'gerrit',
      number: 42,
      project: 'mediawiki',
      patchset: 3,
    });
    expect(parseChangeRef('https://github.com/wikimedia/mediawiki-config/pull/12')).toEqual({
      forge: 'github',
      repository: 'wikimedia/mediawiki-config',
      number: 12,
    });
    expect(parseChangeRef('wikimedia/mediawiki-config#12')).toEqual({
      forge: 'github',
      repository: 'wikimedia/mediawiki-config',
      number: 12,
    });
    for (const bad of ['', 'abc', '0', '12a', 'https://gerrit.example.org/r/c/x/+/', 'ftp://host/r/1', '-3'])
      expect(() => parseChangeRef(bad), bad).toThrow(/names no change|is not a change number/);
    expect(() => parseChangeRef('I0123abcd')).toThrow(/give a Gerrit change number \(123456\) or URL/);
  });
});

const CODE_BRANCH = 'wmf/1.41.0-wmf.26';
let next = 1000;
function change(fields: Partial<ReviewedChange>): ReviewedChange {
  const number = fields.number ?? ++next;
  return {
    number,
    url: `http://gerrit/r/${number}`,
    project: 'mediawiki-config',
    branch: 'main',
    status: 'open',
    workInProgress: false,
    subject: `change ${number}`,
    owner: 'alice',
    changeId: `I${number.toString(16).padStart(8, '0')}`,
    dependsOn: [],
    parents: [],
    tasks: [],
    patchset: 1,
    ...fields,
  };
}

function world(requested: number[], changes: ReviewedChange[], extra: Partial<BackportWorld> = {}): BackportWorld {
  const resolved: Record<string, number[]> = {};
  for (const c of changes) resolved[c.changeId] = [...(resolved[c.changeId] ?? []), c.number];
  return {
    requested,
    asked: {},
    changes: Object.fromEntries(changes.map((c) => [c.number, c])),
    resolved,
    unreadable: {},
    codeRepo: 'mediawiki',
    configRepo: 'mediawiki-config',
    configBranch: 'main',
    liveBranches: { [CODE_BRANCH]: ['testwikis', 'group0'], 'wmf/1.41.0-wmf.25': ['group1', 'group2'] },
    liveEverywhere: [],
    ...extra,
  };
}

describe('the backport plan', () => {
  it('seed 001: a config change whose code change is not merged is refused, naming both and the chain', () => {
    const code = change({ project: 'mediawiki', branch: CODE_BRANCH, subject: 'Add Foo hook' });
    const config = change({ subject: 'Enable Foo on group0', dependsOn: [code.changeId] });
    const w = world([config.number], [code, config]);
    const plan = planBackport(w);
    expect(plan.phases).toEqual([]);
    expect(plan.refusals).toHaveLength(1);
    expect(describeRefusal(plan.refusals[0], w)).toBe(
      `${config.number} (mediawiki-config main: Enable Foo on group0): its Depends-On ${code.number} (Add Foo hook) is not merged (open) and not in this backport: ship ${code.number} first, or add it to this backport; pulled in by ${config.number} -> Depends-On ${code.changeId}`,
    );
    // Merged but not yet live on every host is refused the same way; live, it goes.
    code.status = 'merged';
    expect(planBackport(w).refusals[0].reason).toMatch(/is merged but not live on every host it reaches/);
    const live = planBackport({ ...w, liveEverywhere: [code.changeId] });
    expect(live.refusals).toEqual([]);
    expect(live.phases).toEqual([{ project: 'mediawiki-config', branch: 'main', changes: [config.number] }]);
  });

  it('seed 001, both given in the wrong order: the code is synced first, then the config that needs it', () => {
    const code = change({ project: 'mediawiki', branch: CODE_BRANCH });
    const config = change({ dependsOn: [code.changeId] });
    const other = change({});
    const plan = planBackport(world([config.number, other.number, code.number], [code, config, other]));
    expect(plan.refusals).toEqual([]);
    expect(plan.phases).toEqual([
      { project: 'mediawiki', branch: CODE_BRANCH, changes: [code.number] },
      { project: 'mediawiki-config', branch: 'main', changes: [config.number, other.number] },
    ]);
  });

  it('refuses abandoned, work-in-progress, unknown, dead-branch and foreign changes, all at once', () => {
    const abandoned = change({ status: 'abandoned' });
    const wip = change({ workInProgress: true });
    const dead = change({ project: 'mediawiki', branch: 'wmf/1.41.0-wmf.20' });
    const master = change({ project: 'mediawiki', branch: 'master' });
    const configBranch = change({ branch: 'wmf/config' });
    const foreign = change({ project: 'operations/puppet', branch: 'production' });
    const w = world(
      [abandoned.number, wip.number, dead.number, master.number, configBranch.number, foreign.number, 999],
      [abandoned, wip, dead, master, configBranch, foreign],
    );
    w.unreadable[999] = 'Gerrit answered 404: no such change';
    const plan = planBackport(w);
    expect(plan.phases).toEqual([]);
    expect(plan.refusals.map((r) => [r.change, r.reason])).toEqual([
      [abandoned.number, 'it is abandoned'],
      [wip.number, 'it is work in progress'],
      [dead.number, `it targets wmf/1.41.0-wmf.20, which no station runs (live: ${CODE_BRANCH}, wmf/1.41.0-wmf.25)`],
      [master.number, `it targets master, which no station runs (live: ${CODE_BRANCH}, wmf/1.41.0-wmf.25)`],
      [configBranch.number, 'it targets wmf/config; config backports go to main'],
      [foreign.number, 'it is in operations/puppet, which is neither mediawiki nor mediawiki-config'],
      [999, 'Gerrit answered 404: no such change'],
    ]);
  });

  it('refuses a cycle of any depth, naming it', () => {
    const a = change({});
    const b = change({});
    const c = change({});
    a.dependsOn = [b.changeId];
    b.dependsOn = [c.changeId];
    c.dependsOn = [a.changeId];
    const plan = planBackport(world([a.number, b.number, c.number], [a, b, c]));
    expect(plan.phases).toEqual([]);
    expect(plan.refusals.map((r) => r.reason)).toEqual([
      `its dependencies form a cycle: ${a.number} -> ${b.number} -> ${c.number} -> ${a.number}`,
    ]);
  });

  it('an unmerged parent in git must be asked for too, and goes first; merged changes are not merged again', () => {
    const merged = change({ status: 'merged' });
    const parent = change({ parents: [merged.number] });
    const child = change({ parents: [parent.number] });
    // Left out, the parent is not merged on the deployer's behalf: the merge of the child would bring it in unnamed.
    const alone = planBackport(world([child.number], [merged, parent, child]));
    expect(alone.phases).toEqual([]);
    expect(alone.refusals.map((r) => r.reason)).toEqual([
      `it sits on ${parent.number} (${parent.subject}) is not merged and not in this backport: add ${parent.number}, or rebase this change`,
    ]);
    // Asked for in any order, the parent goes first.
    const both = planBackport(world([child.number, parent.number], [merged, parent, child]));
    expect(both.refusals).toEqual([]);
    expect(both.phases).toEqual([
      { project: 'mediawiki-config', branch: 'main', changes: [parent.number, child.number] },
    ]);
    // Asked for with its child, a work-in-progress parent is refused for itself, with the chain that named it.
    const wipParent = change({ workInProgress: true });
    const onWip = change({ parents: [wipParent.number] });
    const refused = planBackport(world([onWip.number, wipParent.number], [wipParent, onWip]));
    expect(refused.refusals).toEqual([
      {
        change: wipParent.number,
        reason: 'it is work in progress',
        chain: [`${onWip.number}`, `parent ${wipParent.number}`],
      },
    ]);
    const done = change({ status: 'merged' });
    expect(planBackport(world([done.number], [done])).alreadyMerged).toEqual([done.number]);
  });

  it('a Depends-On that names nothing, or only abandoned changes, is refused', () => {
    const ghost = change({ dependsOn: ['I00000000deadbeef'] });
    const dropped = change({ status: 'abandoned' });
    const onDropped = change({ dependsOn: [dropped.changeId] });
    const w = world([ghost.number, onDropped.number], [ghost, dropped, onDropped]);
    expect(planBackport(w).refusals.map((r) => r.reason)).toEqual([
      'its Depends-On I00000000deadbeef names no change the forge has',
      `its Depends-On ${dropped.changeId} is abandoned`,
    ]);
  });

  it('a URL naming another project, or a patch set the change has moved past, is refused', () => {
    const moved = change({ patchset: 3 });
    const elsewhere = change({});
    const w = world([moved.number, elsewhere.number], [moved, elsewhere]);
    w.asked = { [moved.number]: { patchset: 2 }, [elsewhere.number]: { project: 'operations/puppet' } };
    expect(planBackport(w).refusals.map((r) => r.reason)).toEqual([
      'patch set 2 was named, but the change is at patch set 3: look at the new one, then name it',
      'it is in mediawiki-config, not operations/puppet as its URL says',
    ]);
    w.asked[moved.number] = { patchset: 3 };
    w.asked[elsewhere.number] = { project: 'mediawiki-config' };
    expect(planBackport(w).refusals).toEqual([]);
  });
});
