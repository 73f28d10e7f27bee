// Hosts over SSH (ssh2). Host keys must match a known_hosts entry: an unknown or changed key is refused, never
// learned, and a key marked @revoked is refused. Authentication is by private key or by the SSH agent. Connect,
// handshake and every command have timeouts; idle connections are kept alive and a dead one is noticed.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { Client, type ClientChannel } from 'ssh2';
import {
  HeldShell,
  HostError,
  shellQuote,
  type Held,
  type RunOptions,
  type RunResult,
  type Transport,
} from './transport';

export interface SshOptions {
  host: string;
  address: string;
  port: number;
  user: string;
  knownHostsFile: string;
  privateKeyFile?: string;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
}

export interface KnownHostKeys {
  trusted: Buffer[];
  revoked: Buffer[];
}

/**
 * The keys known_hosts holds for a host, read by OpenSSH's own `ssh-keygen -F`, so hashed (|1|) entries, host
 * patterns and `@revoked` markers mean exactly what they mean to ssh. Lookup names: "addr" on port 22,
 * "[addr]:port" otherwise.
 */
export async function knownHostKeys(knownHostsFile: string, address: string, port: number): Promise<KnownHostKeys> {
  if (!fs.existsSync(knownHostsFile))
    throw new Error(`cannot read known_hosts file ${knownHostsFile}: it does not exist`);
  const name = port === 22 ? address : `[${address}]:${port}`;
  const found = await new Promise<string>((resolve, reject) =>
    execFile('ssh-keygen', ['-F', name, '-f', knownHostsFile], { timeout: 10_000 }, (err, stdout, stderr) => {
      // Exit 1 with no output: the host is not in the file.
      if (err && !(err.code === 1 && !stderr.trim()))
        reject(new Error(`cannot read known_hosts file ${knownHostsFile}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    }),
  );
  const keys: KnownHostKeys = { trusted: [], revoked: [] };
  let revoked = false;
  for (const line of found.split('\n')) {
    if (line.startsWith('# Host ')) revoked = /\bREVOKED\s*$/.test(line);
    else if (line.trim() && !line.startsWith('@cert-authority')) {
      const fields = line.trim().split(/\s+/);
      const key = Buffer.from(fields[fields[0].startsWith('@') ? 3 : 2] ?? '', 'base64');
      (revoked ? keys.revoked : keys.trusted).push(key);
    }
  }
  return keys;
}

/** How often an idle connection is probed, and how many missed answers close it: a dead host is noticed in ~30 s. */
const KEEPALIVE = { keepaliveInterval: 10_000, keepaliveCountMax: 3 };

export class SshTransport implements Transport {
  private connection?: Promise<Client>;

  constructor(private readonly options: SshOptions) {}

  private connect(): Promise<Client> {
    if (this.connection) return this.connection;
    const { host, address, port, user, knownHostsFile, privateKeyFile, connectTimeoutMs } = this.options;
    this.connection = knownHostKeys(knownHostsFile, address, port)
      .catch((err: Error) => {
        throw new HostError(host, err.message);
      })
      .then(
        (known) =>
          new Promise<Client>((resolve, reject) => {
            let refusal: string | undefined;
            const client = new Client();
            client.on('ready', () => resolve(client));
            client.on('error', (err) => {
              this.connection = undefined;
              reject(new HostError(host, refusal ?? `ssh connection to ${address}:${port} failed: ${err.message}`));
            });
            client.on('close', () => {
              this.connection = undefined;
            });
            client.connect({
              host: address,
              port,
              username: user,
              readyTimeout: connectTimeoutMs,
              ...KEEPALIVE,
              privateKey: privateKeyFile ? fs.readFileSync(privateKeyFile) : undefined,
              agent: privateKeyFile ? undefined : process.env.SSH_AUTH_SOCK,
              hostVerifier: (key: Buffer) => {
                if (known.revoked.some((k) => k.equals(key)))
                  refusal = `host key of ${address}:${port} is marked @revoked in ${knownHostsFile}; refusing to connect`;
                else if (known.trusted.length === 0)
                  refusal = `host key of ${address}:${port} is unknown; add it to ${knownHostsFile} after checking it out of band`;
                else if (!known.trusted.some((k) => k.equals(key)))
                  refusal = `host key of ${address}:${port} does not match ${knownHostsFile}: it changed, refusing to connect`;
                return refusal === undefined;
              },
            });
          }),
      );
    this.connection.catch(() => {
      this.connection = undefined;
    });
    return this.connection;
  }

  async run(argv: string[], options: RunOptions = {}): Promise<RunResult> {
    const client = await this.connect();
    const timeoutMs = options.timeoutMs ?? this.options.commandTimeoutMs;
    return new Promise((resolve, reject) => {
      client.exec(shellQuote(argv), (err, stream) => {
        if (err) return reject(new HostError(this.options.host, `ssh exec failed: ${err.message}`));
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        const timer = setTimeout(() => {
          stream.signal('KILL');
          stream.close();
          reject(new HostError(this.options.host, `command timed out after ${timeoutMs} ms: ${argv[0]}`));
        }, timeoutMs);
        stream.on('data', (d: Buffer) => out.push(d));
        stream.stderr.on('data', (d: Buffer) => errOut.push(d));
        stream.on('close', (code: number | null) => {
          clearTimeout(timer);
          resolve({
            code: code ?? 255,
            stdout: Buffer.concat(out).toString(),
            stderr: Buffer.concat(errOut).toString(),
          });
        });
      });
    });
  }

  /**
   * The held command has a channel of its own, and every command run under it (Held.run) goes over that channel to
   * the shell it becomes. Should the connection drop, sshd closes the channel: the shell ends once what it runs has
   * (no signal reaches it without a terminal), so the lock lasts exactly as long as the last command of the
   * operation, and nothing more of the operation can run under it, on this connection or a new one.
   */
  async hold(argv: string[], options: RunOptions = {}): Promise<Held> {
    const client = await this.connect();
    const stream = await new Promise<ClientChannel>((resolve, reject) =>
      client.exec(shellQuote(argv), (err, channel) =>
        err ? reject(new HostError(this.options.host, `ssh exec failed: ${err.message}`)) : resolve(channel),
      ),
    );
    const held = new HeldShell(this.options.host, argv[0], this.options.commandTimeoutMs, {
      write: (text) => {
        if (stream.writable) stream.write(text);
      },
      end: () => stream.end(),
      kill: async (pid) => {
        const killed = await this.run(['kill', '-KILL', String(pid)], { timeoutMs: 10_000 });
        if (killed.code !== 0) throw new HostError(this.options.host, `kill ${pid}: ${killed.stderr.trim()}`);
      },
      abandon: () => stream.close(),
    });
    stream.setEncoding('utf8');
    stream.stderr.setEncoding('utf8');
    stream.on('data', (d: string) => held.stdout(d));
    stream.stderr.on('data', (d: string) => held.stderr(d));
    stream.once('close', (code: number | null | undefined) => held.ended(code ?? null));
    await held.firstLine(options.timeoutMs ?? this.options.commandTimeoutMs);
    return held;
  }

  close(): void {
    const pending = this.connection;
    this.connection = undefined;
    pending?.then((c) => c.end()).catch(() => undefined);
  }
}
