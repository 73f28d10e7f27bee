// A Temporal that requires TLS, and mTLS, configured the way Temporal's own tools are (envconfig: TEMPORAL_* variables
// or a TOML profile). The CLI's dev server (1.9.1) has no TLS options, so a TLS terminator (node:tls, ALPN h2) sits in
// front of the run's dev server: clients speak real TLS to it and real gRPC through it, with certificates made here
// by openssl.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream';
import tls from 'node:tls';
import { NativeConnection } from '@temporalio/worker';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { DEFAULT_CONFIG_FILE, loadConfig } from '../config/load';
import { connectError, temporalConnection } from '../config/temporal-connection';
import { connectClient } from '../cli/client';
import { waitFor } from './helpers';

let dir: string;
const file = (name: string) => path.join(dir, name);
const terminators: tls.Server[] = [];

function openssl(...args: string[]) {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

/** A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate, all signed by the CA. */
function makeCertificates() {
  openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '1',
    '-subj',
    '/CN=signalbox test CA',
  );
  fs.writeFileSync(file('server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  fs.writeFileSync(file('client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const who of ['server', 'client']) {
    openssl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      `${who}.key`,
      '-out',
      `${who}.csr`,
      '-subj',
      `/CN=signalbox test ${who}`,
    );
    openssl(
      'x509',
      '-req',
      '-in',
      `${who}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '1',
      '-out',
      `${who}.pem`,
      '-extfile',
      `${who}.ext`,
    );
  }
}

/** Terminates TLS (requiring a client certificate signed by the CA when mtls) and forwards the bytes to the dev server. */
function terminator(upstream: string, mtls: boolean): Promise<string> {
  const [host, port] = upstream.split(':');
  const server = tls.createServer(
    {
      key: fs.readFileSync(file('server.key')),
      cert: fs.readFileSync(file('server.pem')),
      ca: fs.readFileSync(file('ca.pem')),
      requestCert: mtls,
      rejectUnauthorized: mtls,
      ALPNProtocols: ['h2'],
    },
    (socket) => pipeline(socket, net.connect(Number(port), host), socket, () => undefined),
  );
  server.on('tlsClientError', () => undefined); // refused handshakes are what some tests want
  terminators.push(server);
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve(`127.0.0.1:${(server.address() as net.AddressInfo).port}`)),
  );
}

/** Only these variables, so nothing from the machine's own Temporal settings leaks in. */
function useEnv(vars: Record<string, string>) {
  for (const name of Object.keys(process.env)) if (name.startsWith('TEMPORAL_')) vi.stubEnv(name, undefined);
  vi.stubEnv('XDG_CONFIG_HOME', dir); // no temporalio/temporal.toml there: the default profile file is absent
  for (const [name, value] of Object.entries(vars)) vi.stubEnv(name, value);
}

let tlsAddress: string;
let mtlsAddress: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'signalbox-tls-'));
  makeCertificates();
  tlsAddress = await terminator(inject('temporalAddress'), false);
  mtlsAddress = await terminator(inject('temporalAddress'), true);
  fs.writeFileSync(
    file('temporal.toml'),
    [
      '[profile.secure]',
      `address = "${mtlsAddress}"`,
      'namespace = "default"',
      '[profile.secure.tls]',
      `server_ca_cert_path = "${file('ca.pem')}"`,
      `client_cert_path = "${file('client.pem')}"`,
      `client_key_path = "${file('client.key')}"`,
      '[profile.nocert]',
      `address = "${mtlsAddress}"`,
      '[profile.nocert.tls]',
      `server_ca_cert_path = "${file('ca.pem')}"`,
    ].join('\n'),
  );
});

afterEach(() => {
  vi.unstubAllEnvs();
});

afterAll(async () => {
  await Promise.all(terminators.map((s) => new Promise((r) => s.close(r))));
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('a Temporal that requires TLS', () => {
  it('the CLI, given the CA through TEMPORAL_* variables, starts and lists workflows over TLS', async () => {
    useEnv({
      TEMPORAL_ADDRESS: tlsAddress,
      TEMPORAL_NAMESPACE: 'default',
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: file('ca.pem'),
    });
    const config = loadConfig();
    expect(temporalConnection(config).options).toMatchObject({
      address: tlsAddress,
      tls: { serverRootCACertificate: expect.anything() },
    });
    const client = await connectClient(config);
    try {
      const workflowId = `tls-${path.basename(dir)}`;
      // No worker polls this queue: the workflow only has to exist for the listing to find it.
      const handle = await client.workflow.start('nothingRunsThis', {
        taskQueue: `tls-${path.basename(dir)}`,
        workflowId,
      });
      const listed = await waitFor(
        'the workflow in the listing',
        async () => {
          const ids: string[] = [];
          for await (const execution of client.workflow.list({ query: `WorkflowId = '${workflowId}'` }))
            ids.push(execution.workflowId);
          return ids.length ? ids : undefined;
        },
        20_000,
      );
      expect(listed).toEqual([workflowId]);
      await handle.terminate('test over');
    } finally {
      await client.connection.close();
    }
  });

  it('a client without the CA is refused and told to set the CA', async () => {
    useEnv({ TEMPORAL_ADDRESS: tlsAddress, TEMPORAL_TLS: 'true' });
    const refused = await connectClient(loadConfig()).then(
      () => 'connected',
      (err: Error) => err.message,
    );
    expect(refused).toContain(`cannot connect to Temporal at ${tlsAddress} (TLS, server CA from the system store)`);
    expect(refused).toMatch(/self.signed certificate/);
    expect(refused).toContain('not signed by a CA this client trusts: point TEMPORAL_TLS_SERVER_CA_CERT_PATH');
  });
});

describe('a Temporal that requires client certificates (mTLS), configured by a profile file', () => {
  it('the worker (NativeConnection) and the CLI connect with the profile that carries the client certificate', async () => {
    useEnv({ TEMPORAL_CONFIG_FILE: file('temporal.toml'), TEMPORAL_PROFILE: 'secure' });
    const temporal = temporalConnection(loadConfig());
    // The profile's address wins over signalbox.yml's.
    expect(temporal.summary).toBe(
      `${mtlsAddress} (TLS, server CA ${file('ca.pem')}, client cert ${file('client.pem')})`,
    );
    const native = await NativeConnection.connect(temporal.options);
    try {
      const { namespaceInfo } = await native.workflowService.describeNamespace({ namespace: temporal.namespace });
      expect(namespaceInfo?.name).toBe('default');
    } finally {
      await native.close();
    }
    const client = await connectClient(loadConfig());
    try {
      const listed: string[] = [];
      for await (const execution of client.workflow.list({ query: `WorkflowId = 'none-${path.basename(dir)}'` }))
        listed.push(execution.workflowId);
      expect(listed).toEqual([]);
    } finally {
      await client.connection.close();
    }
  });

  it('a worker without its client certificate is refused and told to set one', async () => {
    useEnv({ TEMPORAL_CONFIG_FILE: file('temporal.toml'), TEMPORAL_PROFILE: 'nocert' });
    const temporal = temporalConnection(loadConfig());
    const refused = await NativeConnection.connect(temporal.options).then(
      async (c) => (await c.close(), 'connected'),
      (err) => connectError(temporal, err).message,
    );
    // TLS 1.3: the server's alert races the client's first request, so the refusal reads either way.
    expect(refused).toMatch(/CertificateRequired|broken pipe|connection closed/);
    expect(refused).toContain('(mTLS)');
    expect(refused).toContain('set TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH');
  });
});

describe('where the settings come from', () => {
  const config = () => loadConfig(DEFAULT_CONFIG_FILE);

  it('signalbox.yml when neither a profile nor the environment says otherwise', () => {
    useEnv({});
    const yml = config().temporal;
    const temporal = temporalConnection(config());
    expect(temporal.options).toEqual({ address: yml.address });
    expect(temporal.namespace).toBe(yml.namespace);
    expect(temporal.summary).toBe(`${yml.address} (no TLS)`);
  });

  it('the environment over the profile, and an API key turns TLS on', () => {
    useEnv({
      TEMPORAL_CONFIG_FILE: file('temporal.toml'),
      TEMPORAL_PROFILE: 'secure',
      TEMPORAL_ADDRESS: 'temporal.example:7233',
      TEMPORAL_NAMESPACE: 'prod',
      TEMPORAL_API_KEY: 'k',
    });
    const temporal = temporalConnection(config());
    expect(temporal.options).toMatchObject({
      address: 'temporal.example:7233',
      apiKey: 'k',
      tls: { clientCertPair: expect.anything() },
    });
    expect(temporal.namespace).toBe('prod');
    useEnv({ TEMPORAL_ADDRESS: 'temporal.example:7233', TEMPORAL_API_KEY: 'k' });
    expect(temporalConnection(config()).options).toEqual({ address: 'temporal.example:7233', apiKey: 'k', tls: true });
  });

  it('a profile file, profile or certificate that is not there is an error naming it', () => {
    useEnv({ TEMPORAL_CONFIG_FILE: file('typo.toml') });
    expect(() => temporalConnection(config())).toThrow(
      `TEMPORAL_CONFIG_FILE names ${file('typo.toml')}, which does not exist`,
    );
    useEnv({ TEMPORAL_CONFIG_FILE: file('temporal.toml'), TEMPORAL_PROFILE: 'staging' });
    expect(() => temporalConnection(config())).toThrow(/Profile 'staging' not found/);
    useEnv({ TEMPORAL_TLS_SERVER_CA_CERT_PATH: file('missing-ca.pem') });
    expect(() => temporalConnection(config())).toThrow(
      `Temporal connection settings: cannot read ${file('missing-ca.pem')}`,
    );
  });
});
