// Depool and repool through the load balancer's HTTP API (conftool-like: POST /pools/<host> {"pooled": bool}).
// Setting a host to the state it is already in is harmless, so retries are safe, and a busy load balancer is
// retried rather than left with a host depooled.
import pRetry from 'p-retry';

const ATTEMPTS = 5;

/**
 * One host's pool change, asked again a few times (0.2 s, then doubling) when the load balancer is busy: the
 * activity changes many hosts, and Temporal retrying all of it is not the answer to one busy reply.
 */
async function withRetries<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await pRetry(call, {
      retries: ATTEMPTS - 1,
      minTimeout: 200,
      factor: 2,
      shouldRetry: ({ error }) => !(error as { permanent?: boolean }).permanent,
    });
  } catch (err) {
    const cause = (err as { cause?: Error }).cause;
    throw new Error(`${what}: ${(err as Error).message}${cause ? ` (${cause.message})` : ''}`);
  }
}

export async function setPooled(loadBalancer: string | undefined, host: string, pooled: boolean): Promise<void> {
  if (!loadBalancer) return;
  await withRetries(`load balancer could not ${pooled ? 'repool' : 'depool'} ${host}`, async () => {
    const res = await fetch(`${loadBalancer}/pools/${encodeURIComponent(host)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ pooled }),
      signal: AbortSignal.timeout(10_000),
    });
    if (!res.ok) {
      const refusal = Object.assign(new Error(`HTTP ${res.status} ${await res.text()}`), {
        permanent: res.status < 500,
      });
      throw refusal;
    }
  });
}

export async function poolStates(loadBalancer: string | undefined): Promise<Record<string, boolean>> {
  if (!loadBalancer) return {};
  return withRetries('load balancer did not list its pools', async () => {
    const res = await fetch(`${loadBalancer}/pools`, { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return (await res.json()) as Record<string, boolean>;
  });
}
