// The revokers this deployment has, by grant type. Later grants (AWS, GitHub, secrets) register here.

import { type Revokers, tokenRevoker } from "../core/grants/revoke.ts";
import type { Env } from "./env.ts";

/** Revokers available with this env's configuration. */
export function revokersFor(_env: Env): Revokers {
  return { token: tokenRevoker };
}
