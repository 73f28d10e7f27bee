// The daily backport, as scap backport runs it and better: check every change at once, wait for the services'
// leases, then for each sync (one repository and branch, dependencies first): merge, stage once, sync the test
// servers, wait for a person to confirm, and ship the same release to production through the engine, canaries
// first. Before production, an abort or a silent test server reverts in the forge and syncs the test servers back;
// in production, a failure is rolled back by the engine, reverted in the forge, and waits for `backport ack`.
import {
  ApplicationFailure,
  CancellationScope,
  allHandlersFinished,
  condition,
  executeChild,
  isCancellation,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { Release } from '../../activities/releases';
import { authorizer } from '../authorize';
import {
  describeIdentity,
  searchAttributes,
  type BackportStatus,
  type BackportStep,
  type BackportSync,
  type SignedAction,
} from '../definitions';
import type { Strategy } from '../plan';
import { rolloutWorkflow } from '../rollout';
import { causeOf, failureType } from '../train/activities';
import { InOrder } from '../train/records';
import { describeWeekly, openAt, type WeeklyWindows } from '../windows';
import { acts, records } from './activities';
import { describeRefusal, planBackport, type ChangeRef } from './changes';
import { BackportState } from './state';
import { steerBackport } from './steering';

export interface BackportInput {
  changes: ChangeRef[];
  by: string;
  signed?: SignedAction;
  /** Outside the backport windows: needs an approver's signature for the emergency action, and is recorded. */
  emergency?: boolean;
  codeService: string;
  configService: string;
  /** Production's canaries and batches, as for any deploy. */
  strategy: Strategy;
  /** The group of test servers every sync reaches first. */
  testHosts: string;
  confirmTimeoutMs: number;
  windows?: WeeklyWindows;
  /** How often a taken lease is asked again. */
  leasePollMs?: number;
}

/** The test servers take the release all at once; any failure there stops the backport before production. */
const TEST_SERVER_STRATEGY: Strategy = { canary: null, batch: '100%', maxFail: '0', fetchConcurrency: 80 };
/** Putting test servers back must not stop at one that fails: every one at once, failures reported. */
const PUT_BACK_STRATEGY: Strategy = { canary: null, batch: '100%', maxFail: '100%', fetchConcurrency: 80 };
/** Merge refusals a person can resolve (a new patch set, a -2 lifted, CI fixed): the backport asks, then retries. */
const MERGE_QUESTIONS = ['NewPatchSet', 'Vetoed', 'CiFailed', 'NeedsReview'];

type Ending = 'shipped' | 'stopped' | 'rolled-back';

export async function backportWorkflow(input: BackportInput): Promise<BackportStatus> {
  const id = workflowInfo().workflowId;
  const numbers = input.changes.map((c) => c.number);
  const named = numbers.join(', ');
  const state = new BackportState(numbers, input.by, Boolean(input.emergency));
  const { status } = state;
  const auth = authorizer(id);
  steerBackport(state, auth);
  upsertSearchAttributes([{ key: searchAttributes.kind, value: 'backport' }]);
  const log = new InOrder((what) => state.note(what));
  let seq = 0;
  const record = (what: string, by = status.by) => {
    state.note(what, by);
    const entry = { id: `${id}#${++seq}`, at: new Date().toISOString(), by, what: `backport ${named}: ${what}` };
    log.inBackground(() => records.logAction(entry), 'SAL entry not written');
  };
  const ping = (owners: string[], subject: string) => {
    const message = {
      id: `${id}-ping${++seq}`,
      subject: `${[...new Set(owners)].join(', ')}: ${subject}`,
      body: subject,
    };
    log.inBackground(() => records.sendNotification(message), 'ping not sent');
  };
  const refuse = async (why: string): Promise<never> => {
    status.outcome = why;
    state.moveTo('refused');
    await log.sent();
    throw ApplicationFailure.nonRetryable(why, 'BackportRefused', status);
  };
  state.report();

  // 1. Who asks, and when: refused before anything is read from the forge or a host.
  const identity = await auth
    .verify({ by: input.by, signed: input.signed }, input.emergency ? 'emergency' : 'backport', numbers.join(','))
    .catch((err: Error) => refuse(err.message));
  status.by = describeIdentity(identity);
  if (input.windows && !openAt(new Date(), input.windows)) {
    if (!input.emergency)
      await refuse(
        `outside the backport windows (${describeWeekly(input.windows)}): an approver may start it now with --emergency, which is recorded`,
      );
    record(`emergency backport outside the windows (${describeWeekly(input.windows)})`);
  }

  // 2. Every check at once, before anything merges.
  const world = await acts.gatherBackport({ changes: input.changes });
  const plan = planBackport(world);
  if (plan.refusals.length) {
    const reasons = plan.refusals.map((r) => `  ${describeRefusal(r, world)}`).join('\n');
    record(`refused, nothing was merged: ${plan.refusals.map((r) => describeRefusal(r, world)).join('; ')}`);
    await refuse(`refused, nothing was merged:\n${reasons}`);
  }
  status.syncs = plan.phases.map((phase) => ({
    project: phase.project,
    branch: phase.branch,
    service: phase.project === world.configRepo ? input.configService : input.codeService,
    changes: phase.changes.map((n) => {
      const c = world.changes[n];
      return {
        number: n,
        subject: c.subject,
        owner: c.owner,
        tasks: c.tasks,
        alreadyMerged: plan.alreadyMerged.includes(n),
      };
    }),
    state: 'waiting',
  }));
  status.testServers = await acts.testServers({ group: input.testHosts });
  if (!status.testServers.length)
    await refuse(
      `backport.testHosts names group ${input.testHosts}, which has no hosts: give some test servers that group, or name another`,
    );
  record(`started: ${status.syncs.map((s, i) => `sync ${i + 1} ${s.project} ${s.branch}`).join(', ')}`);

  // 3. One change at a time per service: every service this backport deploys, held from the first merge to the end.
  const services = [...new Set(status.syncs.map((s) => s.service))].sort();
  const held: string[] = [];
  let ending: Ending = 'stopped';
  try {
    let leased = true;
    for (const service of services) {
      if (!(await takeLease(service))) {
        leased = false;
        break;
      }
      held.push(service);
    }
    if (!leased) {
      status.outcome = `aborted while waiting for the lease (${state.abortRequest?.reason}): nothing was merged or deployed`;
      state.moveTo('aborted');
    }
    for (let i = 0; leased && i < status.syncs.length; i++) {
      status.current = i;
      ending = await shipSync(i);
      if (ending !== 'shipped') break;
    }
  } finally {
    await CancellationScope.nonCancellable(async () => {
      for (const service of held) await acts.releaseServiceLease({ service, workflowId: id });
    });
  }
  if (ending === 'rolled-back') {
    // The lease is free again: a fix can ship while this waits for a person.
    await condition(() => state.acknowledgement !== null);
    record(`acknowledged after the rollback: ${state.acknowledgement!.reason}`, state.acknowledgement!.by);
    state.moveTo('rolled-back');
  } else if (ending === 'shipped') {
    status.outcome = `live on every host: ${status.syncs.map((s) => `${s.project} ${s.branch} as ${s.release}`).join('; ')}`;
    record(status.outcome);
    ping(owners(), `backport ${named} is live everywhere`);
    state.moveTo('done');
  }
  await log.sent();
  await condition(allHandlersFinished);
  return status;

  function owners(sync?: BackportSync): string[] {
    return (sync ? [sync] : status.syncs).flatMap((s) => s.changes.map((c) => c.owner));
  }

  /** Waits behind whoever holds the lease (a train's station move, a deploy), saying so; false when aborted. */
  async function takeLease(service: string): Promise<boolean> {
    let said = '';
    for (;;) {
      try {
        await acts.acquireServiceLease({ service, workflowId: id, by: status.by });
        return true;
      } catch (err) {
        if (failureType(err) !== 'LeaseTaken') throw err;
        const why = `${causeOf(err)}; the backport goes once it is done`;
        if (why !== said) state.note(`waiting: ${why}`);
        said = why;
        state.waitFor('waiting-for-lease', why);
        if (await condition(() => state.abortRequest !== null, input.leasePollMs ?? 5000)) return false;
      }
    }
  }

  /**
   * Asks a person; every question times out into a revert, since the backport holds its services meanwhile. Once
   * answered the step moves on at once, so nothing can confirm a question that is no longer asked.
   */
  async function ask(question: string, then: BackportStep): Promise<'confirmed' | 'aborted' | 'timeout'> {
    const n = state.ask(question, new Date(Date.now() + input.confirmTimeoutMs).toISOString());
    const answered = await condition(() => state.confirmed(n) || state.abortRequest !== null, input.confirmTimeoutMs);
    const answer = state.abortRequest ? 'aborted' : answered ? 'confirmed' : 'timeout';
    state.moveTo(answer === 'confirmed' ? then : 'reverting');
    return answer;
  }

  function unanswered(answer: 'aborted' | 'timeout'): string {
    return answer === 'aborted'
      ? `aborted by ${state.abortRequest!.by}: ${state.abortRequest!.reason}`
      : `nobody confirmed within ${Math.round(input.confirmTimeoutMs / 1000)} s`;
  }

  /** Merges, stages, tests and ships one sync. */
  async function shipSync(i: number): Promise<Ending> {
    const sync = status.syncs[i];
    const changeIds = sync.changes.map((c) => world.changes[c.number].changeId);
    const merged: { number: number; sha: string }[] = [];
    let testServersBefore: Record<string, string | null> | null = null;
    let release: Release;
    const stop = (why: string) => stopBeforeProduction(i, merged, testServersBefore, why);
    try {
      sync.state = 'merging';
      state.moveTo('merging');
      sync.before = await acts.branchHead({ repo: sync.project, branch: sync.branch });
      for (const change of sync.changes.filter((c) => !c.alreadyMerged)) {
        if (state.abortRequest) return stop(unanswered('aborted'));
        const sha = await merge(change.number, world.changes[change.number].patchset);
        if (sha !== null && typeof sha !== 'string') return stop(sha.why);
        if (sha === null) continue;
        merged.push({ number: change.number, sha });
        record(`merged ${change.number} (${change.subject})`);
      }
      if (state.abortRequest) return stop(unanswered('aborted'));
      const head = await acts.branchHead({ repo: sync.project, branch: sync.branch });
      sync.state = 'merged';
      state.moveTo('staging');
      release = await acts.stageBackport({ repo: sync.project, branch: sync.branch, sha: head });
      sync.release = release.id;
      const { current, idleHosts } = await acts.currentReleases({ service: sync.service, release, selector: {} });
      // The extra-commit guard: what this release ships that production (not the test servers) does not run,
      // beyond these changes.
      const running = [
        ...new Set(
          Object.entries(current)
            .filter(([host, r]) => !!r && !idleHosts.includes(host))
            .map(([, r]) => r!),
        ),
      ];
      const { extra } = await acts.broughtBeyond({
        repo: sync.project,
        service: sync.service,
        head,
        before: sync.before,
        running,
        changeIds,
      });
      if (extra.length) {
        const list = extra
          .slice(0, 10)
          .map((c) => `${c.sha.slice(0, 10)} ${c.subject}`)
          .join('; ');
        const answer = await ask(
          `the release would also ship ${extra.length} commit(s) this backport did not name: ${list}. \`signalbox backport confirm ${numbers[0]}\` ships them too; \`signalbox backport abort ${numbers[0]}\` reverts`,
          'testing',
        );
        if (answer !== 'confirmed') return stop(unanswered(answer));
        record(`shipping ${extra.length} more commit(s) on confirmation: ${list}`);
      }

      // The test servers, then a person.
      testServersBefore = Object.fromEntries(status.testServers.map((t) => [t.host, current[t.host] ?? null]));
      if (state.abortRequest) return stop(unanswered('aborted'));
      state.moveTo('testing');
      await executeChild(rolloutWorkflow, {
        workflowId: `${id}-test-${i + 1}`,
        args: [
          {
            service: sync.service,
            release,
            selector: { group: input.testHosts },
            strategy: TEST_SERVER_STRATEGY,
            by: status.by,
          },
        ],
      });
      sync.state = 'on-test-servers';
      const servers = status.testServers.map((t) => `${t.host} (${t.address}${t.port ? `:${t.port}` : ''})`).join(', ');
      record(`${release.id} is on the test servers ${servers}`);
      ping(
        owners(sync),
        `${sync.changes.map((c) => c.number).join(', ')} is on the test servers ${servers}: check it, then \`signalbox backport confirm ${numbers[0]}\` (or abort)`,
      );
      const answer = await ask(
        `${release.id} is on the test servers ${servers}: check your change there, then \`signalbox backport confirm ${numbers[0]}\`, or \`signalbox backport abort ${numbers[0]} --reason ...\``,
        'deploying',
      );
      if (answer !== 'confirmed') return stop(unanswered(answer));
    } catch (err) {
      if (isCancellation(err)) {
        await stop(`cancelled before production`);
        throw err;
      }
      return stop(`sync ${i + 1} did not reach production: ${causeOf(err)}`);
    }

    // Production, canaries first, with the very release the test servers ran.
    sync.state = 'deploying';
    state.moveTo('deploying');
    try {
      await executeChild(rolloutWorkflow, {
        workflowId: `${id}-deploy-${i + 1}`,
        args: [{ service: sync.service, release, selector: {}, strategy: input.strategy, by: status.by }],
      });
    } catch (err) {
      const why = `production did not take ${release.id}: ${isCancellation(err) ? 'cancelled' : causeOf(err)}`;
      state.moveTo('reverting');
      // Cleanup runs even when the backport itself is being cancelled.
      const { back, reverted } = await CancellationScope.nonCancellable(async () => ({
        back: await putTestServersBack(i, testServersBefore!),
        reverted: await revertMerged(i, merged, why),
      }));
      if (isCancellation(err)) throw err;
      sync.state = 'rolled-back';
      status.outcome = `${why}. The engine rolled the hosts back${back}; ${reverted}. Merge a fix or a revert, then \`signalbox backport ack ${numbers[0]} --reason ...\``;
      record(status.outcome);
      ping(owners(sync), `backport ${named} was rolled back: ${why}`);
      state.waitFor(
        'awaiting-ack',
        `a person to acknowledge the rollback: \`signalbox backport ack ${numbers[0]} --reason ...\``,
      );
      return 'rolled-back';
    }
    sync.state = 'live';
    record(`synced ${sync.project} ${sync.branch} to every host as ${release.id}`);
    return 'shipped';
  }

  /**
   * Merges one change; a refusal a person can resolve asks first. The sha when this backport merged it, null when
   * someone else had (theirs to revert, not ours), or why it stopped.
   */
  async function merge(number: number, patchset: number): Promise<string | null | { why: string }> {
    let checked = patchset;
    for (;;) {
      try {
        const merged = await acts.mergeChange({ number, patchset: checked, deployer: status.by });
        if (!merged.alreadyMerged) return merged.sha;
        record(`${number} was merged meanwhile by someone else, at patch set ${merged.patchset}`);
        if (merged.patchset === checked) return null;
        const answer = await ask(
          `${number} was merged by someone else at patch set ${merged.patchset}, not the ${checked} that was checked: look at it, then \`signalbox backport confirm ${numbers[0]}\` ships it, or \`signalbox backport abort ${numbers[0]}\` reverts what this backport merged`,
          'merging',
        );
        return answer === 'confirmed' ? null : { why: unanswered(answer) };
      } catch (err) {
        const type = failureType(err);
        if (!type || !MERGE_QUESTIONS.includes(type)) throw err;
        const answer = await ask(
          `${causeOf(err)}. \`signalbox backport confirm ${numbers[0]}\` tries again${type === 'NewPatchSet' ? ' with the new patch set' : ''}; \`signalbox backport abort ${numbers[0]}\` reverts what merged`,
          'merging',
        );
        if (answer !== 'confirmed') return { why: unanswered(answer) };
        if (type === 'NewPatchSet') checked = await acts.currentPatchset({ number });
      }
    }
  }

  /** Before production: revert what merged, put the test servers back; production was never touched. */
  async function stopBeforeProduction(
    i: number,
    merged: { number: number; sha: string }[],
    testServersBefore: Record<string, string | null> | null,
    why: string,
  ): Promise<Ending> {
    const sync = status.syncs[i];
    state.moveTo('reverting');
    // Cleanup runs even when the backport itself is being cancelled.
    const { back, reverted } = await CancellationScope.nonCancellable(async () => ({
      back: testServersBefore ? await putTestServersBack(i, testServersBefore) : '',
      reverted: await revertMerged(i, merged, why),
    }));
    sync.state = 'reverted';
    const live = status.syncs.slice(0, i).map((s) => `${s.project} ${s.branch}`);
    status.outcome = `${why}. Production untouched${back}; ${reverted}${live.length ? `; still live from this backport: ${live.join(', ')}` : ''}`;
    record(status.outcome);
    ping(owners(sync), `backport ${named} stopped: ${why}`);
    state.moveTo('aborted');
    return 'stopped';
  }

  /** Reverts this sync's merges in the forge, newest first; says what it did. */
  async function revertMerged(i: number, merged: { number: number; sha: string }[], why: string): Promise<string> {
    const sync = status.syncs[i];
    const done: number[] = [];
    const failed: string[] = [];
    for (const change of [...merged].reverse()) {
      try {
        await acts.revertChange({
          repo: sync.project,
          branch: sync.branch,
          sha: change.sha,
          changeId: `${id}-revert-${change.number}-${uuid4()}`,
          by: status.by,
          reason: `backport ${named}: ${why}`,
        });
        done.push(change.number);
      } catch (err) {
        failed.push(`${change.number} (${causeOf(err)})`);
      }
    }
    const parts = [
      merged.length ? '' : 'nothing was merged',
      done.length ? `reverted ${done.join(', ')} in the forge` : '',
      failed.length ? `NOT reverted, revert by hand: ${failed.join('; ')}` : '',
    ];
    return parts.filter(Boolean).join('; ');
  }

  /** The test servers go back to what each ran before this sync; says where they are. */
  async function putTestServersBack(i: number, before: Record<string, string | null>): Promise<string> {
    const sync = status.syncs[i];
    const byRelease = new Map<string, string[]>();
    const problems: string[] = [];
    for (const [host, release] of Object.entries(before)) {
      if (!release)
        problems.push(`${host} ran no release of ${sync.service} before (or could not be read): sync it by hand`);
      else if (release !== sync.release) byRelease.set(release, [...(byRelease.get(release) ?? []), host]);
    }
    let n = 0;
    for (const [releaseId, hosts] of byRelease) {
      try {
        const release = await acts.stagedRelease({ service: sync.service, id: releaseId });
        await executeChild(rolloutWorkflow, {
          workflowId: `${id}-put-back-${i + 1}-${++n}`,
          args: [
            {
              service: sync.service,
              release,
              selector: { hosts },
              strategy: PUT_BACK_STRATEGY,
              by: status.by,
              movingBack: true,
            },
          ],
        });
      } catch (err) {
        problems.push(`${hosts.join(', ')} not back on ${releaseId}: ${causeOf(err)}`);
      }
    }
    const where = [...byRelease].map(([r, hosts]) => `${hosts.join(', ')} on ${r}`).join('; ');
    if (problems.length) return `; test servers NOT all back: ${problems.join('; ')}`;
    return where ? `; test servers back: ${where}` : '';
  }
}
