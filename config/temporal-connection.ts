// Where and how to reach Temporal, for the CLI (Connection) and the worker (NativeConnection) alike. Settings come
// from Temporal's own client configuration (@temporalio/envconfig): a TOML profile and TEMPORAL_* variables, so a
// team configures signalbox the way it configures the temporal CLI. signalbox.yml gives the defaults.
import fs from 'node:fs';
import { Connection, type TLSConfig } from '@temporalio/client';
import {
  loadClientConfigProfile,
  toClientOptions,
  type ClientConfigProfile,
  type ConfigDataSource,
} from '@temporalio/envconfig';
import type { SignalboxConfig } from './load';

export interface TemporalConnection {
  /** What both Connection.connect and NativeConnection.connect take. */
  options: { address: string; tls?: TLSConfig | boolean | null; apiKey?: string; metadata?: Record<string, string> };
  namespace: string;
  /** One line for messages: the address, how it is secured and where that was configured. */
  summary: string;
}

const PROFILE_FILE = 'the profile file (TEMPORAL_CONFIG_FILE, else ~/.config/temporalio/temporal.toml)';

export function temporalConnection(config: SignalboxConfig, env: NodeJS.ProcessEnv = process.env): TemporalConnection {
  const vars = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
  // envconfig ignores a missing file; one named on purpose must exist, or a typo would silently drop TLS.
  if (vars.TEMPORAL_CONFIG_FILE && !fs.existsSync(vars.TEMPORAL_CONFIG_FILE)) {
    throw new Error(
      `TEMPORAL_CONFIG_FILE names ${vars.TEMPORAL_CONFIG_FILE}, which does not exist; fix the path or unset it`,
    );
  }
  let profile: ClientConfigProfile;
  let options: ReturnType<typeof toClientOptions>['connectionOptions'];
  try {
    profile = loadClientConfigProfile({ overrideEnvVars: vars });
    options = toClientOptions(profile).connectionOptions; // reads the certificate files
  } catch (err) {
    const why =
      (err as NodeJS.ErrnoException).code === 'ENOENT'
        ? `cannot read ${(err as NodeJS.ErrnoException).path}`
        : (err as Error).message;
    throw new Error(
      `Temporal connection settings: ${why} (check ${PROFILE_FILE}, profile ${vars.TEMPORAL_PROFILE ?? 'default'}, and the TEMPORAL_TLS_* variables)`,
    );
  }
  // envconfig puts TEMPORAL_ADDRESS/NAMESPACE over the profile; signalbox.yml fills in what neither says.
  const address = profile.address ?? config.temporal.address;
  const namespace = profile.namespace ?? config.temporal.namespace;
  const tls = options.tls;
  const secured = tls
    ? [
        `TLS${profile.tls?.serverName ? ` as ${profile.tls.serverName}` : ''}`,
        `server CA ${where(profile.tls?.serverCACert) ?? 'from the system store'}`,
        ...(profile.tls?.clientCert ? [`client cert ${where(profile.tls.clientCert)}`] : []),
        ...(profile.apiKey ? ['API key'] : []),
      ].join(', ')
    : 'no TLS';
  return {
    options: {
      address,
      ...(tls !== undefined ? { tls } : {}),
      ...(options.apiKey ? { apiKey: options.apiKey } : {}),
      ...(options.metadata ? { metadata: options.metadata as Record<string, string> } : {}),
    },
    namespace,
    summary: `${address} (${secured})`,
  };
}

function where(source: ConfigDataSource | undefined): string | undefined {
  return source && ('path' in source ? source.path : 'inline');
}

/** What to check, by the transport error a refused connection gave (grpc-js, OpenSSL and rustls wordings). */
function hint(message: string, temporal: TemporalConnection): string {
  const tlsOn = Boolean(temporal.options.tls);
  if (
    /UnknownIssuer|self.signed certificate|unable to (verify|get local issuer)|certificate verify failed/i.test(message)
  ) {
    return "the server's certificate is not signed by a CA this client trusts: point TEMPORAL_TLS_SERVER_CA_CERT_PATH (profile: tls.server_ca_cert_path) at the CA that signed it";
  }
  if (/NotValidForName|ALTNAME_INVALID|does not match certificate/i.test(message)) {
    return "the server's certificate does not name this address: connect by a name it lists, or set TEMPORAL_TLS_SERVER_NAME (profile: tls.server_name)";
  }
  const clientCert =
    'set TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH (profile: tls.client_cert_path, tls.client_key_path) to a certificate signed by a CA the server trusts';
  if (
    /CertificateRequired|certificate required|alert (bad certificate|unknown ca|certificate unknown)|BadCertificate|UnknownCA/i.test(
      message,
    )
  ) {
    return `the server wants a client certificate it trusts (mTLS): ${clientCert}`;
  }
  // In TLS 1.3 the client finishes its handshake before the server checks the client certificate, so the refusal
  // often arrives as a closed connection instead of the alert.
  if (
    tlsOn &&
    /broken pipe|connection closed|ECONNRESET|connection reset|socket hang up|socket disconnected/i.test(message)
  ) {
    return `the server closed the connection after the TLS handshake, as one that wants a client certificate (mTLS) does: ${clientCert}`;
  }
  if (/UNAUTHENTICATED|PERMISSION_DENIED|Unauthorized|invalid api key/i.test(message)) {
    return 'the server refused the credentials: check TEMPORAL_API_KEY (profile: api_key) and the namespace';
  }
  if (tlsOn && /wrong version number|packet length too long|CorruptMessage|InvalidContentType/i.test(message)) {
    return 'the server does not speak TLS there: set TEMPORAL_TLS=false (profile: tls.disabled = true) or use its TLS port';
  }
  if (/ECONNREFUSED|Connection refused/i.test(message))
    return 'nothing listens there: start it with `signalbox dev`, or check TEMPORAL_ADDRESS / temporal.address';
  if (!tlsOn)
    return 'if the server requires TLS, set TEMPORAL_TLS=true and TEMPORAL_TLS_SERVER_CA_CERT_PATH (or a profile); for a local server, start it with `signalbox dev`';
  return 'check the address, the CA (TEMPORAL_TLS_SERVER_CA_CERT_PATH) and the client certificate (TEMPORAL_TLS_CLIENT_CERT_PATH)';
}

/** The error to show when connecting failed; `detail` is the transport's own reason when the SDK hid it. */
export function connectError(temporal: TemporalConnection, err: unknown, detail?: string): Error {
  // A ServiceError says "Failed to connect to Temporal server" and keeps the server's reason in its cause.
  const cause = (err as Error).cause as Error | undefined;
  const message = detail ?? [(err as Error).message, cause?.message].filter(Boolean).join(': ');
  return new Error(`cannot connect to Temporal at ${temporal.summary}: ${message}; ${hint(message, temporal)}`, {
    cause: err,
  });
}

/**
 * Connection.connect reports only "Failed to connect before the deadline" (it waits for the channel to be ready).
 * One call without the retry interceptor fails at once with the channel's last error, which says why.
 */
export async function transportFailure(temporal: TemporalConnection): Promise<string | undefined> {
  const probe = Connection.lazy({ ...temporal.options, interceptors: [] });
  try {
    await probe.withDeadline(Date.now() + 5000, () => probe.workflowService.getSystemInfo({}));
    return undefined;
  } catch (err) {
    return (err as Error).message.replace(/\.?\s*Resolution note:\s*$/, '');
  } finally {
    await probe.close();
  }
}
