// Policy records of sets kept in POLICY_KV: each carries its policy's YAML source and an inclusion proof for the
// Merkle root the Worker bundle was built with. Reading one checks the proof, then loads the source with the same
// rules as bundled policies; anything else (a record written to KV by hand, another build's record) is refused.

import * as z from "zod/mini";
import { canonicalJson, utf8 } from "../encoding.ts";
import type { IssuerConfig } from "../oidc/issuers.ts";
import { err, ok, type Result } from "../result.ts";
import { loadPolicyRecord } from "./load.ts";
import { merkleTree, type ProofStep, verifyInclusion } from "./merkle.ts";
import type { PolicyDefinition } from "./types.ts";

/** A policy's source as a record: its name and YAML text. */
export interface PolicySource {
  name: string;
  source: string;
}

const StoredRecord = z.strictObject({
  name: z.string(),
  source: z.string(),
  proof: z.array(z.string()),
});

/** The bytes the tree commits to: name and source, canonically serialised. */
function leafBytes(record: PolicySource): Uint8Array {
  return utf8(canonicalJson({ name: record.name, source: record.source }));
}

/** The store key of a policy record: by the root of the set's records, then name. */
export function policyRecordKey(root: string, name: string): string {
  return `${root}/p/${name}`;
}

/** Builds the records of a set (in `wrangler kv bulk put` format) and the Merkle root the Worker bundle embeds. */
export async function buildPolicyRecords(
  sources: readonly PolicySource[],
): Promise<{ root: string; entries: Array<{ key: string; value: string }> }> {
  const { root, proofs } = await merkleTree(sources.map(leafBytes));
  return {
    root,
    entries: sources.map((s, i) => ({
      key: policyRecordKey(root, s.name),
      value: JSON.stringify({ name: s.name, source: s.source, proof: proofs[i] as ProofStep[] }),
    })),
  };
}

/**
 * Verifies a record read for `name` against `root` and loads it against the bundle's issuers. The error is a
 * sentence for the operator (what failed), never the record's content.
 */
export async function readPolicyRecord(
  text: string,
  name: string,
  root: string,
  issuers: readonly IssuerConfig[],
): Promise<Result<PolicyDefinition, string>> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return err("it is not JSON");
  }
  const parsed = StoredRecord.safeParse(json);
  if (!parsed.success) return err("it is not a policy record with a proof (written by an older build?)");
  const record = parsed.data;
  if (record.name !== name) return err(`it names policy "${record.name}"`);
  if (!(await verifyInclusion(leafBytes(record), record.proof, root))) {
    return err("its proof does not lead to this deployment's Merkle root");
  }
  const loaded = await loadPolicyRecord(name, record.source, issuers);
  if (!loaded.def) {
    const first = loaded.problems.find((p) => p.severity === "error");
    return err(`it breaks a load-time rule (${first ? first.message : "invalid"})`);
  }
  return ok(loaded.def);
}
