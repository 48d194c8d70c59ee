// Hono environment typing shared by every route module.

import type { Env } from "../adapters/env.ts";
import type { Runtime } from "./runtime.ts";

export type AppEnv = {
  Bindings: Env;
  /** `adminActor`: the Cloudflare Access email of an admin API caller (set by requireAdmin). */
  Variables: { requestId: string; runtime: Runtime; adminActor?: string };
};
