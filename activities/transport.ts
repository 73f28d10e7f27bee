// How commands reach a host. Commands are always argv lists, and both transports quote every word before a shell
// sees it, so nothing is ever built from raw strings.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  timeoutMs?: number;
}

/** A command that says one line when ready and runs until released: how a host lock is held. */
export interface Held {
  /** The first line the command printed. */
  readonly line: string;
  /** Ends the command by closing its input; its host lets go of whatever it held. */
  release(): void;
}

export interface Transport {
  run(argv: string[], options?: RunOptions): Promise<RunResult>;
  hold(argv: string[], options?: RunOptions): Promise<Held>;
  close(): void;
}

/**
 * The first line a held command prints. Its end before that line, or the timeout, is an error; `stop` ends it.
 * Both transports hand over their command's output streams and its end.
 */
export function firstLine(
  host: string,
  argv: string[],
  output: {
    stdout: NodeJS.ReadableStream;
    stderr: NodeJS.ReadableStream;
    onEnd(cb: (code: number | null) => void): void;
  },
  timeoutMs: number,
  stop: () => void,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    let settled = false;
    const settle = (done: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      done();
    };
    const timer = setTimeout(
      () =>
        settle(() => {
          stop();
          reject(new HostError(host, `${argv[0]} said nothing within ${timeoutMs} ms`));
        }),
      timeoutMs,
    );
    output.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const end = out.indexOf('\n');
      if (end >= 0) settle(() => resolve(out.slice(0, end)));
    });
    output.stderr.on('data', (d: Buffer) => (err += d.toString()));
    // An exit status says the host ran the command and it refused; none says the connection went.
    output.onEnd((code) =>
      settle(() =>
        reject(
          code === null || code === undefined
            ? new HostError(host, `the connection ended while ${argv[0]} waited: ${err.trim()}`)
            : new CommandEnded(host, `${argv[0]} ended (exit ${code}) before it was ready: ${err.trim()}`),
        ),
      ),
    );
  });
}

export class HostError extends Error {
  constructor(
    readonly host: string,
    message: string,
  ) {
    super(`${host}: ${message}`);
    this.name = 'HostError';
  }
}

/** A held command that ended before it was ready: the host was reached and answered. */
export class CommandEnded extends HostError {}

/** POSIX single-quote quoting: the only character needing care inside single quotes is the quote itself. */
export function shellQuote(argv: string[]): string {
  return argv
    .map((word) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}

/**
 * A long-lived `sh` that runs one command at a time, framed by a token on stdout and stderr. Forking a large Node
 * process costs milliseconds per command; a small shell forks cheaply. It is the local twin of reusing an SSH
 * connection. On a timeout the shell's whole process group is killed, and the pool makes a new one.
 */
class PooledShell {
  private readonly child: ChildProcessWithoutNullStreams;
  private sequence = 0;
  dead = false;

  constructor() {
    this.child = spawn('sh', [], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    this.child.on('exit', () => (this.dead = true));
    this.child.on('error', () => (this.dead = true));
    this.child.stdin.on('error', () => (this.dead = true));
    this.idle();
  }

  /** An idle shell must not keep the process alive; a busy one must. */
  private idle(): void {
    this.child.unref();
    for (const stream of [this.child.stdin, this.child.stdout, this.child.stderr])
      (stream as unknown as { unref(): void }).unref();
  }

  private busy(): void {
    this.child.ref();
    for (const stream of [this.child.stdin, this.child.stdout, this.child.stderr])
      (stream as unknown as { ref(): void }).ref();
  }

  /**
   * Runs one command. A held command (see ShellPool.hold) keeps the shell's input, and `output` sees its stdout
   * as it comes; any other command reads /dev/null.
   */
  run(
    host: string,
    argv: string[],
    timeoutMs: number,
    held?: { output(stdoutSoFar: string): void },
  ): Promise<RunResult> {
    const token = `__signalbox_${process.pid}_${++this.sequence}_${Math.random().toString(36).slice(2)}`;
    this.busy();
    return new Promise((resolve, reject) => {
      let out = '';
      let err = '';
      let code: number | null = null;
      const outMarker = new RegExp(`\n${token} (\\d+)\n$`);
      const finish = () => {
        if (code === null || !err.endsWith(`\n${token}\n`)) return;
        cleanup();
        resolve({
          code,
          stdout: out.slice(0, out.lastIndexOf(`\n${token} `)),
          stderr: err.slice(0, err.lastIndexOf(`\n${token}\n`)),
        });
      };
      const onOut = (d: Buffer) => {
        out += d.toString();
        held?.output(out.split(`\n${token} `)[0]);
        const m = outMarker.exec(out);
        if (m) code = Number(m[1]);
        finish();
      };
      const onErr = (d: Buffer) => {
        err += d.toString();
        finish();
      };
      const onExit = () => {
        cleanup();
        reject(new HostError(host, `local shell exited while running ${argv[0]}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        this.kill();
        reject(new HostError(host, `command timed out after ${timeoutMs} ms: ${argv[0]}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.child.stdout.off('data', onOut);
        this.child.stderr.off('data', onErr);
        this.child.off('exit', onExit);
        this.idle();
      };
      this.child.stdout.on('data', onOut);
      this.child.stderr.on('data', onErr);
      this.child.once('exit', onExit);
      this.child.stdin.write(
        `${shellQuote(argv)}${held ? '' : ' </dev/null'}; printf '\\n%s %s\\n' ${token} "$?"; printf '\\n%s\\n' ${token} >&2\n`,
      );
    });
  }

  /** A line on the shell's input: what a held command waits for to end. */
  say(line: string): void {
    if (!this.dead) this.child.stdin.write(`${line}\n`);
  }

  kill(): void {
    this.dead = true;
    try {
      process.kill(-this.child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

class ShellPool {
  private readonly idle: PooledShell[] = [];
  private live = 0;
  private readonly waiting: ((shell: PooledShell) => void)[] = [];

  constructor(private readonly size: number) {}

  private acquire(): Promise<PooledShell> {
    while (this.idle.length) {
      const shell = this.idle.pop()!;
      if (!shell.dead) return Promise.resolve(shell);
      this.live--;
    }
    if (this.live < this.size) {
      this.live++;
      return Promise.resolve(new PooledShell());
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(shell: PooledShell): void {
    if (shell.dead) {
      this.live--;
      const next = this.waiting.shift();
      if (next) {
        this.live++;
        next(new PooledShell());
      }
      return;
    }
    const next = this.waiting.shift();
    if (next) next(shell);
    else this.idle.push(shell);
  }

  async run(host: string, argv: string[], timeoutMs: number): Promise<RunResult> {
    const shell = await this.acquire();
    try {
      return await shell.run(host, argv, timeoutMs);
    } finally {
      this.release(shell);
    }
  }

  /**
   * Runs a command that says one line when ready and then reads a line of input before it ends (see Held). The
   * shell stays with it until then. Should this process die, the shell's input closes, and the command ends.
   */
  async hold(host: string, argv: string[], timeoutMs: number): Promise<Held> {
    const shell = await this.acquire();
    // Only while its command runs: once the shell is back in the pool, a line would go to someone else's command.
    let holding = true;
    let firstLine: ((line: string) => void) | undefined;
    const ready = new Promise<string>((resolve) => (firstLine = resolve));
    const ended = shell
      .run(host, argv, HELD_AT_MOST_MS, {
        output: (out) => {
          const end = out.indexOf('\n');
          if (end >= 0) firstLine?.(out.slice(0, end));
        },
      })
      .finally(() => {
        holding = false;
        this.release(shell);
      });
    let timer: NodeJS.Timeout | undefined;
    const line = await Promise.race([
      ready,
      ended.then((result) => {
        throw new CommandEnded(
          host,
          `${argv[0]} ended (exit ${result.code}) before it was ready: ${result.stderr.trim()}`,
        );
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          shell.kill();
          reject(new HostError(host, `${argv[0]} said nothing within ${timeoutMs} ms`));
        }, timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
    ended.catch(() => undefined);
    return {
      line,
      release: () => {
        if (holding) shell.say('');
        holding = false;
      },
    };
  }
}

/** A held command ends at the latest after this, releasing what it held: longer than any activity runs. */
const HELD_AT_MOST_MS = 2 * 60 * 60 * 1000;
const holdingShells = new ShellPool(64);

const localShells = new ShellPool(24);

export class LocalTransport implements Transport {
  constructor(
    readonly host: string,
    private readonly defaultTimeoutMs = 120_000,
  ) {}

  run(argv: string[], options: RunOptions = {}): Promise<RunResult> {
    return localShells.run(this.host, argv, options.timeoutMs ?? this.defaultTimeoutMs);
  }

  hold(argv: string[], options: RunOptions = {}): Promise<Held> {
    // Shells of their own: one stays with its command as long as it is held, and must not starve the others.
    return holdingShells.hold(this.host, argv, options.timeoutMs ?? this.defaultTimeoutMs);
  }

  close(): void {}
}
