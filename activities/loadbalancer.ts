// Depool and repool through the load balancer's HTTP API (conftool-like: POST /pools/<host> {"pooled": bool}).
// Setting a host to the state it is already in is harmless, so retries are safe.

export async function setPooled(loadBalancer: string | undefined, host: string, pooled: boolean): Promise<void> {
  if (!loadBalancer) return;
  const res = await fetch(`${loadBalancer}/pools/${encodeURIComponent(host)}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ pooled }),
    signal: AbortSignal.timeout(10_000),
  });
  if (!res.ok) throw new Error(`load balancer refused to ${pooled ? 'repool' : 'depool'} ${host}: HTTP ${res.status} ${await res.text()}`);
}

export async function poolStates(loadBalancer: string | undefined): Promise<Record<string, boolean>> {
  if (!loadBalancer) return {};
  const res = await fetch(`${loadBalancer}/pools`, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`load balancer answered HTTP ${res.status}`);
  return (await res.json()) as Record<string, boolean>;
}
