// Hono environment typing shared by every route module.

import type { Env } from "../adapters/env.ts";
import type { Runtime } from "./runtime.ts";

export type AppEnv = { Bindings: Env; Variables: { requestId: string; runtime: Runtime } };
