// Who may do what: every steering action arrives signed with the person's own SSH key (SSHSIG, as
// `ssh-keygen -Y sign` makes it and git uses for signed commits). The worker checks it with OpenSSH's own
// `ssh-keygen -Y verify` against `auth.allowedSigners`, then checks the role, the time and that the nonce is new.
// A refusal changes nothing and is written to the SAL.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { AuthConfig, SignalboxConfig } from '../config/load';
import {
  readStatement,
  ROLE_GRANTS,
  SIGNATURE_NAMESPACE,
  type Action,
  type Identity,
  type Role,
  type SignedAction,
} from '../workflows/definitions';
import { createNotifyActivities } from './notify';

export interface ActionRequest {
  action: Action;
  workflowId: string;
  /** The station, release or signature the action is about, when it names one. */
  target?: string;
  /** Who the request says it is from; only trusted in open mode. */
  claimedBy: string;
  signed?: SignedAction;
}

/** What each role may do here: ROLE_GRANTS, and backports for deployers when backport.deployersMay says so. */
export function grantsOf(config: Pick<SignalboxConfig, 'backport'>): Record<Role, Action[]> {
  if (!config.backport.deployersMay) return ROLE_GRANTS;
  return { ...ROLE_GRANTS, deployers: [...ROLE_GRANTS.deployers, 'backport'] };
}

/** The roles a principal holds, and so the actions it may take. */
export function actionsOf(
  auth: Extract<AuthConfig, { mode: 'signed' }>,
  principal: string,
  grants: Record<Role, Action[]> = ROLE_GRANTS,
): Action[] {
  return (Object.keys(grants) as Role[])
    .filter((role) => auth.roles[role].includes(principal))
    .flatMap((role) => grants[role]);
}

function run(file: string, args: string[], input: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err);
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
    child.stdin?.end(input);
  });
}

export function createAuthActivities(config: SignalboxConfig) {
  const nonceDir = path.join(config.home, 'auth', 'nonces');

  /** Remembers a nonce once, across workflows and worker restarts; a retry of the same activity may see its own. */
  function spendNonce(nonce: string, maxAgeSeconds: number): void {
    if (!/^[A-Za-z0-9_-]{16,64}$/.test(nonce)) throw new Error('the nonce is not 16 to 64 letters and digits');
    fs.mkdirSync(nonceDir, { recursive: true });
    let info: string;
    try {
      const current = Context.current().info;
      info = `${current.workflowExecution?.runId}/${current.activityId}`;
    } catch {
      info = `pid ${process.pid}`;
    }
    const file = path.join(nonceDir, nonce);
    try {
      fs.writeFileSync(file, info, { flag: 'wx' });
    } catch {
      if (fs.readFileSync(file, 'utf8') !== info)
        throw new Error('replayed: this signed request was already used; sign a new one');
    }
    // Nonces older than the freshness window can never be accepted again anyway.
    const cutoff = Date.now() - 2 * maxAgeSeconds * 1000;
    for (const old of fs.readdirSync(nonceDir)) {
      const stat = fs.statSync(path.join(nonceDir, old), { throwIfNoEntry: false });
      if (stat && stat.mtimeMs < cutoff) fs.rmSync(path.join(nonceDir, old), { force: true });
    }
  }

  async function verifySignature(
    auth: Extract<AuthConfig, { mode: 'signed' }>,
    signed: SignedAction,
    principal: string,
  ): Promise<string> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'signalbox-verify-'));
    try {
      const signature = path.join(dir, 'statement.sig');
      fs.writeFileSync(signature, signed.signature);
      const verified = await run(
        'ssh-keygen',
        ['-Y', 'verify', '-f', auth.allowedSigners, '-I', principal, '-n', SIGNATURE_NAMESPACE, '-s', signature],
        signed.statement,
      );
      if (verified.code !== 0) {
        const why = (verified.stderr || verified.stdout).trim().split('\n').pop() ?? '';
        throw new Error(`the signature is not from a key allowed for ${principal} in ${auth.allowedSigners} (${why})`);
      }
      return /key (\S+:\S+)/.exec(verified.stdout)?.[1] ?? 'unknown key';
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  /**
   * The identity behind an action, or a non-retryable refusal (type Unauthorized) saying why: unsigned, badly
   * signed, an unknown key, a key without the role, a statement for another action, workflow or target, stale or
   * from the future, or a replay.
   */
  async function verifyAction(request: ActionRequest): Promise<Identity> {
    const auth = config.auth;
    if (auth.mode === 'none') return { principal: request.claimedBy || 'anonymous', fingerprint: null };
    try {
      const statement = readStatement(request.signed);
      if (statement.action !== request.action)
        throw new Error(`the signature is for "${statement.action}", not "${request.action}"`);
      if (statement.workflowId !== request.workflowId)
        throw new Error(`the signature is for ${statement.workflowId}, not ${request.workflowId}`);
      if (request.target !== undefined && statement.target !== request.target)
        throw new Error(`the signature is for ${statement.target ?? 'no target'}, not ${request.target}`);
      const age = (Date.now() - Date.parse(statement.at)) / 1000;
      if (!(Math.abs(age) <= auth.maxAgeSeconds))
        throw new Error(
          `the signature is ${Number.isFinite(age) ? `${Math.round(age)} s old` : 'undated'}; signatures are good for ${auth.maxAgeSeconds} s, so sign again`,
        );
      const fingerprint = await verifySignature(auth, request.signed!, statement.principal);
      const grants = grantsOf(config);
      const may = actionsOf(auth, statement.principal, grants);
      if (!may.includes(request.action)) {
        const roles = (Object.keys(grants) as Role[]).filter((r) => grants[r].includes(request.action));
        throw new Error(
          `${statement.principal} may not ${request.action}: that takes the ${roles.join(' or ')} role in auth.roles`,
        );
      }
      spendNonce(statement.nonce, auth.maxAgeSeconds);
      return { principal: statement.principal, fingerprint };
    } catch (err) {
      const reason = (err as Error).message;
      await createNotifyActivities(config)
        .logAction({
          id: `refused-${Date.now()}-${Math.random().toString(36).slice(2, 10)}`,
          at: new Date().toISOString(),
          by: 'signalbox',
          what: `refused ${request.action} of ${request.workflowId}${request.target ? ` (${request.target})` : ''} asked by ${request.claimedBy || 'someone unnamed'}: ${reason}`,
        })
        .catch(() => undefined);
      throw ApplicationFailure.nonRetryable(reason, 'Unauthorized');
    }
  }

  return { verifyAction };
}
