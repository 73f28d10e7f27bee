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
  /**
   * For a command run under a held lock (Held.run): it keeps the lock's descriptor, so the lock lasts as long as it
   * does even should the shell holding the lock die. Only for signalbox's own host scripts, which start nothing that
   * outlives them; any other command (a restart, a check) runs without it, so a daemon it leaves behind cannot keep
   * the host locked.
   */
  keepsLock?: boolean;
}

/** The descriptor a held lock keeps its flock on, in the shell that holds it (host-ops' lock script). */
export const HELD_LOCK_FD = 9;

/**
 * A command that says one line when ready, then turns into a shell that runs the operation's commands one at a
 * time (a host lock: the lock script ends in `exec sh`), until released. Every command of the operation runs as a
 * child of that shell, on the lock's own channel: none can run once the lock is gone, and the lock cannot go while
 * one runs, because the shell that holds it waits for it.
 */
export interface Held {
  /** The first line the command printed. */
  readonly line: string;
  /**
   * Runs a command on the host under the held lock. Once the held command or its channel is gone this refuses with
   * LockLost and runs nothing; a command running when its channel goes ends LockLost too (on the host it finishes,
   * still holding the lock). A timed-out command is killed on the host and the operation goes on.
   */
  run(argv: string[], options?: RunOptions): Promise<RunResult>;
  /** Resolves once the held shell answers, so the lock was still held then; LockLost otherwise. */
  check(timeoutMs?: number): Promise<void>;
  /** Ends the held command; its host lets go of what it held. */
  release(): void;
}

export interface Transport {
  run(argv: string[], options?: RunOptions): Promise<RunResult>;
  hold(argv: string[], options?: RunOptions): Promise<Held>;
  close(): void;
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

/**
 * The held lock an operation acts under is gone (its channel dropped, its shell ended, or it stopped answering):
 * nothing more of the operation may run. Not a verdict on the host: the operation is tried again, from its journal.
 */
export class LockLost extends HostError {
  constructor(host: string, message: string) {
    super(host, `lock lost: ${message}`);
    this.name = 'LockLost';
  }
}

/** What a held command's transport does for it: its input, and what to do on the host when a command hangs. */
export interface HeldIo {
  /** Writes to the held command's input. */
  write(text: string): void;
  /** Closes that input after the last line. */
  end(): void;
  /** Kills one process on the host (a command that timed out). */
  kill(pid: number): Promise<void>;
  /** Gives up on the held command: its channel closes (or its local shell is killed). */
  abandon(): void;
}

/** What a command is called in messages: one of signalbox's scripts by its name (`sh -c SCRIPT signalbox-read`). */
function commandName(argv: string[]): string {
  return argv[0] === 'sh' && argv[1] === '-c' && argv[3] ? argv[3] : argv[0];
}

/** How long a killed command has to report its end, and a held shell to answer a check. */
const KILLED_GRACE_MS = 10_000;
const CHECK_TIMEOUT_MS = 15_000;

interface Pending {
  token: string;
  what: string;
  pid?: number;
  done(code: number, stdout: string, stderr: string): void;
  lost(err: LockLost): void;
}

/**
 * The worker's side of a held command (see Held), over its output streams (`stdout`, `stderr`, `ended`) and its
 * HeldIo. Each command is framed by a fresh token on stdout and stderr, as a pooled shell frames its commands, and
 * runs in the background of the held shell so that its pid is known and a hung one can be killed on the host.
 */
export class HeldShell implements Held {
  line = '';
  private out = '';
  private err = '';
  private gone?: string;
  private waitingLine?: { resolve(line: string): void; ended(code: number | null): void };
  private current?: Pending;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly host: string,
    private readonly what: string,
    private readonly defaultTimeoutMs: number,
    private readonly io: HeldIo,
  ) {}

  /** The first line; the command's end before it, or the timeout, is an error. */
  firstLine(timeoutMs: number): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waitingLine = undefined;
        this.lose(`${this.what} said nothing within ${timeoutMs} ms`);
        reject(new HostError(this.host, `${this.what} said nothing within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waitingLine = {
        resolve: (line) => {
          clearTimeout(timer);
          resolve((this.line = line));
        },
        // An exit status says the host ran the command and it refused; none says the connection went.
        ended: (code) => {
          clearTimeout(timer);
          reject(
            code === null
              ? new HostError(this.host, `the connection ended while ${this.what} waited: ${this.err.trim()}`)
              : new CommandEnded(
                  this.host,
                  `${this.what} ended (exit ${code}) before it was ready: ${this.err.trim()}`,
                ),
          );
        },
      };
      if (this.gone) this.waitingLine.ended(null);
    });
  }

  stdout(chunk: string): void {
    this.out += chunk;
    if (this.waitingLine) {
      const end = this.out.indexOf('\n');
      if (end < 0) return;
      const line = this.out.slice(0, end);
      this.out = this.out.slice(end + 1);
      const waiting = this.waitingLine;
      this.waitingLine = undefined;
      waiting.resolve(line);
    }
    this.progress();
  }

  stderr(chunk: string): void {
    this.err += chunk;
    this.progress();
  }

  /** The held command ended (its exit status), or its channel went (null). */
  ended(code: number | null): void {
    if (this.waitingLine) {
      const waiting = this.waitingLine;
      this.waitingLine = undefined;
      this.gone = 'it ended';
      return waiting.ended(code);
    }
    this.lose(code === null ? 'its channel to the host ended' : `the shell holding it ended (exit ${code})`);
  }

  run(argv: string[], options: RunOptions = {}): Promise<RunResult> {
    const lockFd = options.keepsLock ? '' : ` ${HELD_LOCK_FD}>&-`;
    return this.enqueue(
      commandName(argv),
      options.timeoutMs ?? this.defaultTimeoutMs,
      true,
      (token) =>
        // The command runs with SIGPIPE as usual; the shell itself ignores it, so a channel that drops cannot kill
        // the lock's holder while a command still runs: it ends when the command has, at its next read.
        `trap '' PIPE; { trap - PIPE; exec ${shellQuote(argv)}; } </dev/null${lockFd} & printf '%sp %s\\n' ${token} "$!"; wait "$!"; printf '\\n%s %s\\n' ${token} "$?"; printf '\\n%s\\n' ${token} >&2\n`,
    ).then(({ code, stdout, stderr }) => ({ code, stdout, stderr }));
  }

  async check(timeoutMs = CHECK_TIMEOUT_MS): Promise<void> {
    await this.enqueue(
      'a check that the lock is held',
      timeoutMs,
      false,
      (token) => `printf '\\n%s 0\\n' ${token}; printf '\\n%s\\n' ${token} >&2\n`,
    );
  }

  release(): void {
    if (this.gone) return;
    this.gone = 'it was released';
    this.io.write('exit\n');
    this.io.end();
  }

  private enqueue(what: string, timeoutMs: number, killable: boolean, text: (token: string) => string) {
    const result = this.queue.then(() => this.exec(what, timeoutMs, killable, text));
    this.queue = result.catch(() => undefined);
    return result;
  }

  private exec(
    what: string,
    timeoutMs: number,
    killable: boolean,
    text: (token: string) => string,
  ): Promise<RunResult> {
    if (this.gone) return Promise.reject(new LockLost(this.host, `${this.gone}, so ${what} was not run under it`));
    const token = `__signalbox_held_${Math.random().toString(36).slice(2)}_${Date.now().toString(36)}`;
    return new Promise<RunResult>((resolve, reject) => {
      let timedOut = false;
      let grace: NodeJS.Timeout | undefined;
      const timer = setTimeout(() => {
        timedOut = true;
        const pid = this.current?.pid;
        if (!killable || pid === undefined)
          return this.lose(`${what} did not answer within ${timeoutMs} ms; the lock goes when the host lets go of it`);
        // Killed on the host, the command reports its end and the held shell takes the next one.
        grace = setTimeout(
          () => this.lose(`${what} timed out and was not seen to end after it was killed`),
          KILLED_GRACE_MS,
        );
        this.io.kill(pid).catch(() => undefined);
      }, timeoutMs);
      const settle = () => {
        clearTimeout(timer);
        clearTimeout(grace);
        this.current = undefined;
      };
      this.out = '';
      this.err = '';
      this.current = {
        token,
        what,
        done: (code, stdout, stderr) => {
          settle();
          if (timedOut) reject(new HostError(this.host, `command timed out after ${timeoutMs} ms: ${what}`));
          else resolve({ code, stdout, stderr });
        },
        lost: (err) => {
          settle();
          reject(err);
        },
      };
      this.io.write(text(token));
    });
  }

  /** Reads the running command's frames: its pid, then its exit status on stdout and its end on stderr. */
  private progress(): void {
    const current = this.current;
    if (!current) return;
    if (current.pid === undefined) {
      const started = new RegExp(`${current.token}p (\\d+)\\n`).exec(this.out);
      if (started) {
        current.pid = Number(started[1]);
        this.out = this.out.slice(0, started.index) + this.out.slice(started.index + started[0].length);
      }
    }
    const ended = new RegExp(`\\n${current.token} (\\d+)\\n`).exec(this.out);
    const errEnd = this.err.indexOf(`\n${current.token}\n`);
    if (!ended || errEnd < 0) return;
    current.done(Number(ended[1]), this.out.slice(0, ended.index), this.err.slice(0, errEnd));
  }

  /** Nothing more runs under this lock; a command waiting for its answer ends LockLost. */
  private lose(why: string): void {
    const first = !this.gone;
    this.gone ??= why;
    if (first) this.io.abandon();
    const current = this.current;
    if (current)
      current.lost(
        new LockLost(
          this.host,
          `${why} while ${current.what} ran; on the host it finishes under the lock, and nothing more of this operation runs`,
        ),
      );
  }
}

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
   * Runs one command. A held command (see ShellPool.hold) keeps the shell's input, and `held` sees its stdout and
   * stderr as they come, without this shell's own frames; any other command reads /dev/null.
   */
  run(
    host: string,
    argv: string[],
    timeoutMs: number,
    held?: { stdout(chunk: string): void; stderr(chunk: string): void },
  ): Promise<RunResult> {
    const token = `__signalbox_${process.pid}_${++this.sequence}_${Math.random().toString(36).slice(2)}`;
    // A held command's output ends at a line's end (its own commands are framed), so its frames need no newline
    // before them, and what it says is passed on as it comes, but for what may be the start of a frame.
    const lead = held ? '' : '\n';
    this.busy();
    return new Promise((resolve, reject) => {
      let out = '';
      let err = '';
      let code: number | null = null;
      const outFrame = `${lead}${token} `;
      const errFrame = `${lead}${token}\n`;
      const outMarker = new RegExp(`${lead}${token} (\\d+)\n$`);
      const passOut = held && passOn(outFrame, (chunk) => held.stdout(chunk));
      const passErr = held && passOn(errFrame, (chunk) => held.stderr(chunk));
      const finish = () => {
        if (code === null || !err.endsWith(errFrame)) return;
        cleanup();
        resolve({
          code,
          stdout: out.slice(0, out.lastIndexOf(outFrame)),
          stderr: err.slice(0, err.lastIndexOf(errFrame)),
        });
      };
      const onOut = (d: Buffer) => {
        out += d.toString();
        passOut?.(out);
        const m = outMarker.exec(out);
        if (m) code = Number(m[1]);
        finish();
      };
      const onErr = (d: Buffer) => {
        err += d.toString();
        passErr?.(err);
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
      const nl = held ? '' : '\\n';
      this.child.stdin.write(
        `${shellQuote(argv)}${held ? '' : ' </dev/null'}; printf '${nl}%s %s\\n' ${token} "$?"; printf '${nl}%s\\n' ${token} >&2\n`,
      );
    });
  }

  /** Text on the shell's input, for the held command reading it. */
  say(text: string): void {
    if (!this.dead) this.child.stdin.write(text);
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
   * Runs a command that says one line when ready and then runs commands read from its input (see Held). The shell
   * stays with it until it ends. Should this process die, the shell's input closes, and the command ends once the
   * command it is running has.
   */
  async hold(host: string, argv: string[], timeoutMs: number, commandTimeoutMs: number): Promise<Held> {
    const shell = await this.acquire();
    // Only while its command runs: once the shell is back in the pool, a line would go to someone else's command.
    let holding = true;
    const held = new HeldShell(host, argv[0], commandTimeoutMs, {
      write: (text) => {
        if (holding) shell.say(text);
      },
      end: () => undefined, // the held shell's `exit` ends it; this shell's input stays open for its next command
      kill: async (pid) => {
        process.kill(pid, 'SIGKILL');
      },
      abandon: () => {
        if (holding) shell.kill();
      },
    });
    void shell
      .run(host, argv, HELD_AT_MOST_MS, { stdout: (c) => held.stdout(c), stderr: (c) => held.stderr(c) })
      .then(
        (result) => result.code,
        () => null,
      )
      .then((code) => {
        holding = false;
        this.release(shell);
        held.ended(code);
      });
    await held.firstLine(timeoutMs);
    return held;
  }
}

/**
 * Passes on what accumulates in a stream up to `frame`, keeping back an end that may be the frame's start. Call it
 * with the whole text so far each time.
 */
function passOn(frame: string, pass: (chunk: string) => void): (soFar: string) => void {
  let passed = 0;
  return (soFar) => {
    let upTo = soFar.indexOf(frame, Math.max(0, passed - frame.length));
    if (upTo < 0) {
      upTo = soFar.length;
      for (let k = Math.min(frame.length - 1, soFar.length - passed); k > 0; k--)
        if (frame.startsWith(soFar.slice(soFar.length - k))) {
          upTo = soFar.length - k;
          break;
        }
    }
    if (upTo > passed) {
      pass(soFar.slice(passed, upTo));
      passed = upTo;
    }
  };
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
    return holdingShells.hold(this.host, argv, options.timeoutMs ?? this.defaultTimeoutMs, this.defaultTimeoutMs);
  }

  close(): void {}
}
