// Loads key/value records into wrangler's local KV persistence (what `wrangler dev` reads), for `npm start` with
// a policy set too large for the Worker bundle. `wrangler kv bulk put --local` writes one key at a time through
// a proxy (minutes for 10,000 records); a throwaway Worker writing batches in parallel takes seconds.

import { join } from "node:path";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { unstable_readConfig } from "wrangler";

const BATCH = 1000;

// Runs inside workerd next to the namespace: one request per batch, the batch's puts in parallel.
const WRITER = `export default {
  async fetch(request, env) {
    const entries = await request.json();
    await Promise.all(entries.map((e) => env.NAMESPACE.put(e.key, e.value)));
    return new Response(null, { status: 204 });
  },
};`;

/** Writes `entries` to the local persistence of the KV namespace bound as `binding` in `root`/wrangler.toml. */
export async function putLocalKv(
  root: string,
  binding: string,
  entries: ReadonlyArray<{ key: string; value: string }>,
): Promise<void> {
  const config = unstable_readConfig({ config: join(root, "wrangler.toml") });
  const namespace = config.kv_namespaces.find((n: { binding: string; id?: string }) => n.binding === binding);
  if (!namespace?.id) throw new Error(`wrangler.toml binds no KV namespace as ${binding}`);
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      modules: true,
      script: WRITER,
      // wrangler's default local persistence: .wrangler/state next to wrangler.toml, v3 below it.
      resourcePersistencePath: join(root, ".wrangler/state/v3"),
      kvNamespaces: { NAMESPACE: namespace.id },
    }),
  );
  try {
    for (let i = 0; i < entries.length; i += BATCH) {
      const res = await mf.dispatchFetch("http://local-kv.invalid/", {
        method: "POST",
        body: JSON.stringify(entries.slice(i, i + BATCH)),
      });
      if (res.status !== 204) throw new Error(`local KV write failed with HTTP ${res.status}`);
    }
  } finally {
    await mf.dispose();
  }
}
