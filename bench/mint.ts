// Worker thread: signs RS256 JWTs (compact, header {alg, kid, typ}) for a list of claim sets.
// RSA-2048 signing is ~0.7 ms, so the bench mints its token pools on every core before measuring.

import { createPrivateKey, sign } from "node:crypto";
import { parentPort, workerData } from "node:worker_threads";

const { pem, kid, claims } = workerData as {
  pem: string;
  kid: string;
  claims: Array<Record<string, unknown>>;
};
const key = createPrivateKey(pem);
const b64 = (s: string) => Buffer.from(s).toString("base64url");
const header = b64(JSON.stringify({ alg: "RS256", kid, typ: "JWT" }));
const out: string[] = new Array(claims.length);
for (let i = 0; i < claims.length; i++) {
  const input = `${header}.${b64(JSON.stringify(claims[i]))}`;
  out[i] = `${input}.${sign("sha256", Buffer.from(input), key).toString("base64url")}`;
}
parentPort?.postMessage(out);
