// Depool and repool over real HTTP: a busy load balancer is asked again, a refusal is not, and the error says which.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { setPooled } from '../activities/loadbalancer';

let server: http.Server | undefined;

afterEach(async () => {
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

/** A load balancer that answers each POST with the next status in `answers` (the last one repeats). */
async function loadBalancer(answers: number[]): Promise<{ url: string; calls: () => number }> {
  let calls = 0;
  server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const status = answers[Math.min(calls++, answers.length - 1)];
      res.writeHead(status).end(status === 200 ? '{"pooled":true}' : `status ${status}`);
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server!.address() as AddressInfo).port}`, calls: () => calls };
}

describe('load balancer', () => {
  it('asks a busy load balancer again until it answers', async () => {
    const lb = await loadBalancer([503, 502, 200]);
    await setPooled(lb.url, 'mw1001', false);
    expect(lb.calls()).toBe(3);
  });

  it('does not ask again after a refusal, and says what was refused', async () => {
    const lb = await loadBalancer([404]);
    await expect(setPooled(lb.url, 'mw1001', true)).rejects.toThrow(
      /^load balancer could not repool mw1001: HTTP 404 status 404$/,
    );
    expect(lb.calls()).toBe(1);
  });

  it('gives up after five answers of a load balancer that stays busy', async () => {
    const lb = await loadBalancer([503]);
    await expect(setPooled(lb.url, 'mw1002', false)).rejects.toThrow(
      /^load balancer could not depool mw1002: HTTP 503/,
    );
    expect(lb.calls()).toBe(5);
  });
});
