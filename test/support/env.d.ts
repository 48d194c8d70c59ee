// Types for the workerd test bindings: the Worker's Env plus the test issuer's URL.

import type { Env as RunpassEnv } from "../../src/adapters/env.ts";

declare global {
  namespace Cloudflare {
    interface Env extends RunpassEnv {
      TEST_ISSUER_BASE: string;
    }
  }
}
