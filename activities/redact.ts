// One redaction pass for everything bound for workflow history or records. It knows the secrets in play (the
// variables the config names for passwords and tokens, the sandbox's wiki password and Slack webhook, and any
// variable whose name says it holds a credential) and replaces them, and URL userinfo and Authorization header
// values, with [redacted]. The worker applies it to every failure and payload it sends (see workers/worker.ts).
import fs from 'node:fs';
import path from 'node:path';
import {
  ApplicationFailure,
  DefaultFailureConverter,
  type Payload,
  type PayloadCodec,
  type PayloadConverter,
  type ProtoFailure,
} from '@temporalio/common';
import type { SignalboxConfig } from '../config/load';

export const REDACTED = '[redacted]';

/** Shorter values would redact ordinary words; no real password or token is this short. */
const MIN_SECRET_LENGTH = 6;
/** Variables redacted by name alone must be longer still: a short value there is likely a flag, not a credential. */
const MIN_GUESSED_LENGTH = 8;
const CREDENTIAL_NAME = /(TOKEN|PASSWORD|PASSWD|SECRET|_KEY|CREDENTIALS?)$/i;

interface Registry {
  /** Variables holding a secret, named by the config. */
  envNames: Set<string>;
  /** user -> variable: the HTTP basic auth header made from them is a secret too. */
  basicAuth: Map<string, Set<string>>;
  /** Secrets kept in the sandbox's own files, read once they exist. */
  sandboxHomes: Set<string>;
  /** home -> the values read, and the fleet file's mtime then (a sandbox made again has new ones). */
  sandboxValues: Map<string, { mtimeMs: number; values: string[] }>;
}

// On globalThis, so every copy of this module (vitest's, the worker's converter path) shares one registry.
const REGISTRY_KEY = Symbol.for('signalbox.redact.registry');
function registry(): Registry {
  const holder = globalThis as unknown as Record<symbol, Registry | undefined>;
  return (holder[REGISTRY_KEY] ??= {
    envNames: new Set(),
    basicAuth: new Map(),
    sandboxHomes: new Set(),
    sandboxValues: new Map(),
  });
}

/** Remembers where this config keeps secrets; values are read when redacting, so a later change of a variable counts. */
export function registerSecrets(config: SignalboxConfig): void {
  const r = registry();
  const env = (name: string | undefined) => name && r.envNames.add(name);
  const gerrit = config.forge?.gerrit;
  if (gerrit) {
    env(gerrit.passwordEnv);
    const users = r.basicAuth.get(gerrit.user) ?? new Set();
    r.basicAuth.set(gerrit.user, users.add(gerrit.passwordEnv));
  }
  env(config.forge?.github?.tokenEnv);
  env(config.train.blockers?.github.tokenEnv);
  env(config.roadmap?.passwordEnv);
  if (config.fleet.sandbox) r.sandboxHomes.add(config.home);
}

/** The sandbox's wiki bot password and Slack webhook (whose URL is its credential), once the sandbox is up. */
function sandboxSecrets(home: string): string[] {
  const r = registry();
  const file = path.join(home, 'sandbox', 'fleet.json');
  try {
    const { mtimeMs } = fs.statSync(file);
    const known = r.sandboxValues.get(home);
    if (known?.mtimeMs === mtimeMs) return known.values;
    const records: { wikiPassword?: string; slackWebhook?: string } | undefined = JSON.parse(
      fs.readFileSync(file, 'utf8'),
    ).records;
    const values = [records?.wikiPassword, records?.slackWebhook].filter((v): v is string => !!v);
    r.sandboxValues.set(home, { mtimeMs, values });
    return values;
  } catch {
    return []; // no sandbox there (yet, or any more)
  }
}

/** Every secret value known now, in the forms it travels in (as is, URL-encoded, inside a basic auth header), longest first. */
export function knownSecrets(): string[] {
  const r = registry();
  const found = new Set<string>();
  const add = (value: string | undefined, min = MIN_SECRET_LENGTH) => {
    if (!value || value.length < min) return;
    found.add(value);
    const encoded = encodeURIComponent(value);
    if (encoded !== value) found.add(encoded);
  };
  for (const name of r.envNames) add(process.env[name]);
  for (const [name, value] of Object.entries(process.env))
    if (CREDENTIAL_NAME.test(name)) add(value, MIN_GUESSED_LENGTH);
  for (const [user, names] of r.basicAuth) {
    for (const name of names) {
      const password = process.env[name];
      if (password && password.length >= MIN_SECRET_LENGTH)
        found.add(Buffer.from(`${user}:${password}`).toString('base64'));
    }
  }
  for (const home of r.sandboxHomes) for (const value of sandboxSecrets(home)) add(value);
  return [...found].sort((a, b) => b.length - a.length);
}

const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@'"<>]+@/gi;
const AUTH_HEADER = /\b(authorization:\s*(?:basic|bearer|token)\s+)[^\s'"<>]+/gi;

export function redact(text: string, secrets = knownSecrets()): string {
  let out = text.replace(URL_USERINFO, `$1${REDACTED}@`).replace(AUTH_HEADER, `$1${REDACTED}`);
  for (const secret of secrets) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  return out;
}

/** Whether `text` holds anything redact would change; cheap enough to ask of every payload. */
function needsRedaction(text: string, secrets: string[]): boolean {
  URL_USERINFO.lastIndex = 0;
  AUTH_HEADER.lastIndex = 0;
  return (
    URL_USERINFO.test(text) ||
    AUTH_HEADER.test(text) ||
    secrets.some((s) => text.includes(s) || text.includes(JSON.stringify(s).slice(1, -1)))
  );
}

/** The same value with every string in it redacted; object keys are left alone. */
export function redactDeep<T>(value: T, secrets = knownSecrets()): T {
  if (typeof value === 'string') return redact(value, secrets) as T;
  if (Array.isArray(value)) return value.map((v) => redactDeep(v, secrets)) as T;
  if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactDeep(v, secrets)])) as T;
  }
  return value;
}

/** Redacts an error in place (message, stack, details, causes) and returns it, keeping its class and type. */
export function redactError<E>(err: E, secrets = knownSecrets()): E {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 20; e = e.cause, depth++) {
    e.message = redact(e.message, secrets);
    if (e.stack) e.stack = redact(e.stack, secrets);
    if (e instanceof ApplicationFailure && e.details)
      (e as { details: unknown[] }).details = redactDeep([...e.details], secrets);
  }
  return err;
}

/**
 * Every activity's errors redacted before they leave it, for the activities' own entry point
 * (activities/index.ts): createActivities returns withRedactedErrors(config, heartbeating({...})).
 */
export function withRedactedErrors<T extends Record<string, (...args: any[]) => Promise<any>>>(
  config: SignalboxConfig,
  activities: T,
): T {
  registerSecrets(config);
  const wrapped: Record<string, (...args: any[]) => Promise<any>> = {};
  for (const [name, fn] of Object.entries(activities)) {
    wrapped[name] = async (...args) => {
      try {
        return await fn(...args);
      } catch (err) {
        throw redactError(err);
      }
    };
  }
  return wrapped as T;
}

/** Failures as the default converter makes them, with message and stack trace redacted at every level. */
export class RedactingFailureConverter extends DefaultFailureConverter {
  override errorToFailure(err: unknown, payloadConverter: PayloadConverter): ProtoFailure {
    const failure = super.errorToFailure(err, payloadConverter);
    const secrets = knownSecrets();
    for (let f: ProtoFailure | null | undefined = failure, depth = 0; f && depth < 20; f = f.cause, depth++) {
      if (f.message) f.message = redact(f.message, secrets);
      if (f.stackTrace) f.stackTrace = redact(f.stackTrace, secrets);
    }
    return failure;
  }
}

/**
 * Redacts JSON payloads on their way out (activity results, workflow commands, failure details). Decoding is the
 * identity, so clients need no codec of their own to read what this writes.
 */
export const redactingCodec: PayloadCodec = {
  async encode(payloads: Payload[]): Promise<Payload[]> {
    const secrets = knownSecrets();
    return payloads.map((payload) => {
      const encoding = payload.metadata?.encoding && Buffer.from(payload.metadata.encoding).toString();
      if (encoding !== 'json/plain' || !payload.data) return payload;
      const text = Buffer.from(payload.data).toString('utf8');
      if (!needsRedaction(text, secrets)) return payload;
      return { ...payload, data: Buffer.from(JSON.stringify(redactDeep(JSON.parse(text), secrets))) };
    });
  },
  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads;
  },
};
