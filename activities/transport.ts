// How commands reach a host. Commands are always argv lists: the local transport spawns them without a shell,
// the SSH transport quotes every word, so nothing is ever built from raw strings.
import { spawn } from 'node:child_process';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  timeoutMs?: number;
}

export interface Transport {
  run(argv: string[], options?: RunOptions): Promise<RunResult>;
  close(): void;
}

export class HostError extends Error {
  constructor(readonly host: string, message: string) {
    super(`${host}: ${message}`);
    this.name = 'HostError';
  }
}

/** POSIX single-quote quoting: the only character needing care inside single quotes is the quote itself. */
export function shellQuote(argv: string[]): string {
  return argv.map((word) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`)).join(' ');
}

export class LocalTransport implements Transport {
  constructor(readonly host: string, private readonly defaultTimeoutMs = 120_000) {}

  run(argv: string[], options: RunOptions = {}): Promise<RunResult> {
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
    return new Promise((resolve, reject) => {
      const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new HostError(this.host, `command timed out after ${timeoutMs} ms: ${argv[0]}`));
      }, timeoutMs);
      child.stdout.on('data', (d) => out.push(d));
      child.stderr.on('data', (d) => err.push(d));
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(new HostError(this.host, `cannot run ${argv[0]}: ${e.message}`));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
      });
    });
  }

  close(): void {}
}
