// The CLI's side of signed actions: each steering command signs what it asks for (the action, the workflow, the
// station or release, a fresh nonce and the time) with the person's own SSH key, through OpenSSH's ssh-keygen.
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { SignalboxConfig } from '../config/load';
import { SIGNATURE_NAMESPACE, type Action, type ActionStatement, type SignedAction } from '../workflows/definitions';
import { UserError } from './client';

/** Who is asking: SIGNALBOX_USER, else the login name. With auth on, it must be a principal in allowedSigners. */
export const principal = () => process.env.SIGNALBOX_USER ?? process.env.USER ?? os.userInfo().username;

/**
 * The key to sign with: SIGNALBOX_SIGNING_KEY (a private key file, or a public key whose private half is in
 * ssh-agent via SSH_AUTH_SOCK), else git's user.signingkey, else ~/.ssh/id_ed25519.
 */
export function signingKey(): string {
  const fromEnv = process.env.SIGNALBOX_SIGNING_KEY;
  if (fromEnv) return fromEnv;
  const fromGit = (() => {
    try {
      return execFileSync('git', ['config', '--get', 'user.signingkey'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim();
    } catch {
      return '';
    }
  })();
  if (fromGit && fs.existsSync(fromGit.replace(/^~(?=\/)/, os.homedir())))
    return fromGit.replace(/^~(?=\/)/, os.homedir());
  return path.join(os.homedir(), '.ssh', 'id_ed25519');
}

export async function signStatement(statement: ActionStatement, key = signingKey()): Promise<SignedAction> {
  if (!fs.existsSync(key))
    throw new UserError(
      `no SSH key to sign with at ${key}; set SIGNALBOX_SIGNING_KEY to your key (or its .pub with the key in ssh-agent)`,
    );
  const text = JSON.stringify(statement);
  const signature = await new Promise<string>((resolve, reject) => {
    const child = execFile(
      'ssh-keygen',
      ['-Y', 'sign', '-n', SIGNATURE_NAMESPACE, '-f', key],
      { timeout: 30_000 },
      (err, stdout, stderr) => {
        if (err)
          reject(
            new UserError(`ssh-keygen could not sign with ${key}: ${stderr.trim().split('\n').pop() || err.message}`),
          );
        else resolve(stdout);
      },
    );
    child.stdin?.end(text);
  });
  return { statement: text, signature };
}

/**
 * What a steering request carries: who, and (unless auth is none) the signed statement. In open mode it says so,
 * once per command, so nobody mistakes it for a verified action.
 */
export async function steering(
  config: SignalboxConfig,
  action: Action,
  workflowId: string,
  target?: string,
  as?: string,
): Promise<{ by: string; signed?: SignedAction }> {
  if (as !== undefined && config.auth.mode !== 'none')
    throw new UserError(
      '--as names someone else, which only open mode (auth: none) allows; your own key says who you are',
    );
  const by = as ?? principal();
  if (config.auth.mode === 'none') {
    console.log(
      `signalbox: auth is none in ${config.file} (open mode): this ${action} is not signed, and who asks is not verified`,
    );
    return { by };
  }
  const statement: ActionStatement = {
    action,
    workflowId,
    target,
    principal: by,
    nonce: randomBytes(18).toString('base64url'),
    at: new Date().toISOString(),
  };
  return { by, signed: await signStatement(statement) };
}
