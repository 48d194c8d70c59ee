// A SHA-256 Merkle tree over policy records: the Worker bundle carries only the root, each KV record its own
// inclusion proof, so a record can be checked against the deployed build without shipping every digest.

import { hex } from "../encoding.ts";

/** One step of an inclusion proof: the sibling's hash (hex) and whether it sits left (`L`) or right (`R`). */
export type ProofStep = `${"L" | "R"}${string}`;

// Leaves and inner nodes hash under different prefixes (as in RFC 6962), so an inner node can never be
// presented as a record.
const LEAF = 0;
const NODE = 1;

async function digest(prefix: number, ...parts: Uint8Array[]): Promise<Uint8Array> {
  const length = parts.reduce((n, p) => n + p.length, 1);
  const bytes = new Uint8Array(length);
  bytes[0] = prefix;
  let at = 1;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

function fromHex(text: string): Uint8Array | undefined {
  if (!/^[0-9a-f]{64}$/.test(text)) return undefined;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number.parseInt(text.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** The root's printed form. */
function rootText(hash: Uint8Array): string {
  return `sha256:${hex(hash)}`;
}

/** Builds the tree over `leaves` (record bytes, in order): the root and one proof per leaf. */
export async function merkleTree(leaves: Uint8Array[]): Promise<{ root: string; proofs: ProofStep[][] }> {
  if (leaves.length === 0) throw new Error("a Merkle tree needs at least one leaf");
  let level = await Promise.all(leaves.map((l) => digest(LEAF, l)));
  const proofs: ProofStep[][] = leaves.map(() => []);
  // Where each leaf's ancestor sits in the current level.
  const position = leaves.map((_, i) => i);
  while (level.length > 1) {
    for (let leaf = 0; leaf < position.length; leaf++) {
      const i = position[leaf] as number;
      const sibling = i ^ 1;
      // The last node of an odd level is carried up unpaired, so it needs no step.
      if (sibling < level.length) {
        (proofs[leaf] as ProofStep[]).push(`${i & 1 ? "L" : "R"}${hex(level[sibling] as Uint8Array)}`);
      }
      position[leaf] = i >> 1;
    }
    const next: Promise<Uint8Array>[] = [];
    for (let i = 0; i < level.length; i += 2) {
      const left = level[i] as Uint8Array;
      const right = level[i + 1];
      next.push(right ? digest(NODE, left, right) : Promise.resolve(left));
    }
    level = await Promise.all(next);
  }
  return { root: rootText(level[0] as Uint8Array), proofs };
}

/** Whether `leaf` (record bytes) with `proof` hashes to `root`. */
export async function verifyInclusion(
  leaf: Uint8Array,
  proof: readonly string[],
  root: string,
): Promise<boolean> {
  // 100,000 records need 17 steps; anything much longer is not a proof from this build.
  if (proof.length > 64) return false;
  let hash = await digest(LEAF, leaf);
  for (const step of proof) {
    const sibling = fromHex(step.slice(1));
    if (!sibling) return false;
    if (step[0] === "L") hash = await digest(NODE, sibling, hash);
    else if (step[0] === "R") hash = await digest(NODE, hash, sibling);
    else return false;
  }
  // Public data: a plain comparison is enough.
  return rootText(hash) === root;
}
