// Hosts over SSH (ssh2). Host keys must match a known_hosts entry: an unknown or changed key is refused, never
// learned. Authentication is by private key or by the SSH agent. Connect and every command have timeouts.
import fs from 'node:fs';
import { Client } from 'ssh2';
import { HostError, shellQuote, type RunOptions, type RunResult, type Transport } from './transport';

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

/** known_hosts lookup names: "addr" on port 22, "[addr]:port" otherwise. Hashed (|1|) entries are not read. */
export function knownHostKeys(knownHostsFile: string, address: string, port: number): Buffer[] {
  const wanted = port === 22 ? address : `[${address}]:${port}`;
  let text: string;
  try {
    text = fs.readFileSync(knownHostsFile, 'utf8');
  } catch (err) {
    throw new Error(`cannot read known_hosts file ${knownHostsFile}: ${(err as Error).message}`);
  }
  const keys: Buffer[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 3 || fields[0].startsWith('#') || fields[0].startsWith('@')) continue;
    if (fields[0].split(',').includes(wanted)) keys.push(Buffer.from(fields[2], 'base64'));
  }
  return keys;
}

export class SshTransport implements Transport {
  private connection?: Promise<Client>;

  constructor(private readonly options: SshOptions) {}

  private connect(): Promise<Client> {
    if (this.connection) return this.connection;
    const { host, address, port, user, knownHostsFile, privateKeyFile, connectTimeoutMs } = this.options;
    this.connection = new Promise<Client>((resolve, reject) => {
      const trusted = knownHostKeys(knownHostsFile, address, port);
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
        privateKey: privateKeyFile ? fs.readFileSync(privateKeyFile) : undefined,
        agent: privateKeyFile ? undefined : process.env.SSH_AUTH_SOCK,
        hostVerifier: (key: Buffer) => {
          if (trusted.length === 0) refusal = `host key of ${address}:${port} is unknown; add it to ${knownHostsFile} after checking it out of band`;
          else if (!trusted.some((k) => k.equals(key))) refusal = `host key of ${address}:${port} does not match ${knownHostsFile}: it changed, refusing to connect`;
          return refusal === undefined;
        },
      });
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
          resolve({ code: code ?? 255, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(errOut).toString() });
        });
      });
    });
  }

  close(): void {
    const pending = this.connection;
    this.connection = undefined;
    pending?.then((c) => c.end()).catch(() => undefined);
  }
}
