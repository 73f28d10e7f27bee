// GitHub is a hosted service nobody can run locally, so its tests replay recorded responses over real HTTP. The
// responses come from @octokit/fixtures (recorded from api.github.com by the octokit project) and, for endpoints
// that package never recorded (pull requests, sub-issues, compare), from the example responses in GitHub's own
// REST description (test/recordings/github-openapi-examples.json, taken from @octokit/openapi 23.0.2).
// The server expects one exact sequence of requests: anything else is answered 599 and reported, so a test fails
// when the code asks GitHub for something other than what it should.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { REPO_ROOT } from '../config/load';

export interface RecordedResponse {
  status: number;
  body?: unknown;
  /** Hex, for binary bodies such as a tarball. */
  binaryHex?: string;
  headers?: Record<string, string>;
}

export interface Exchange {
  method: string;
  /** The path without its query string. */
  path: string;
  respond: RecordedResponse;
}

export interface SeenRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  body: any;
}

interface FixtureEntry {
  method: string;
  path: string;
  status: number;
  response: unknown;
  responseIsBinary?: boolean;
  headers: Record<string, string>;
}

/** One recorded exchange of an @octokit/fixtures scenario, by position. */
export function fixture(scenario: string, index: number): RecordedResponse {
  const file = path.join(
    REPO_ROOT,
    'node_modules',
    '@octokit',
    'fixtures',
    'scenarios',
    'api.github.com',
    scenario,
    'normalized-fixture.json',
  );
  const entry: FixtureEntry = JSON.parse(fs.readFileSync(file, 'utf8'))[index];
  if (!entry) throw new Error(`@octokit/fixtures ${scenario} has no exchange ${index}`);
  const keep = ['content-type', 'location', 'link'];
  const headers = Object.fromEntries(Object.entries(entry.headers).filter(([k]) => keep.includes(k)));
  return entry.responseIsBinary
    ? { status: entry.status, binaryHex: String(entry.response), headers }
    : { status: entry.status, body: entry.response, headers };
}

/** GitHub's documented example response for one endpoint. */
export function example(name: string): RecordedResponse {
  const all = JSON.parse(
    fs.readFileSync(path.join(REPO_ROOT, 'test', 'recordings', 'github-openapi-examples.json'), 'utf8'),
  );
  if (!all[name]) throw new Error(`no recorded GitHub example named ${name}`);
  return {
    status: all[name].status,
    body: structuredClone(all[name].body),
    headers: { 'content-type': 'application/json; charset=utf-8' },
  };
}

export interface Replay {
  url: string;
  seen: SeenRequest[];
  /** Requests that were not the next expected one, or came after the script ended. */
  unexpected: string[];
  remaining(): number;
  close(): Promise<void>;
}

export async function replay(script: Exchange[]): Promise<Replay> {
  const seen: SeenRequest[] = [];
  const unexpected: string[] = [];
  let next = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://replay');
      const raw = Buffer.concat(chunks).toString('utf8');
      // GitHub reads an encoded slash in a ref (heads%2Fmain) as a slash, and so does the replay.
      const request: SeenRequest = {
        method: req.method ?? '',
        path: decodeURIComponent(url.pathname),
        query: url.searchParams,
        headers: req.headers,
        body: raw ? JSON.parse(raw) : undefined,
      };
      seen.push(request);
      const expected = script[next];
      if (!expected || expected.method !== request.method || expected.path !== request.path) {
        const wanted = expected ? `${expected.method} ${expected.path}` : 'nothing more';
        unexpected.push(`${request.method} ${request.path} (expected ${wanted})`);
        res
          .writeHead(599, { 'content-type': 'application/json' })
          .end(JSON.stringify({ message: `replay: expected ${wanted}` }));
        return;
      }
      next++;
      const { status, body, binaryHex, headers = {} } = expected.respond;
      const base = `http://${req.headers.host}`;
      const rewritten = Object.fromEntries(
        Object.entries(headers).map(([k, v]) => [k, v.replace(/https:\/\/(api|codeload)\.github\.com/g, base)]),
      );
      if (binaryHex !== undefined) res.writeHead(status, rewritten).end(Buffer.from(binaryHex, 'hex'));
      else if (body === undefined) res.writeHead(status, rewritten).end();
      else
        res
          .writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...rewritten })
          .end(typeof body === 'string' ? body : JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    unexpected,
    remaining: () => script.length - next,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
