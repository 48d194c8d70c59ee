// The Worker entry: the app built from the compiled policy bundle, and the Durable Object classes.

import { bundle } from "../generated/policy-bundle.ts";
import { createApp } from "./app.ts";

export { RunLedger } from "./adapters/run-ledger.ts";
export { SecretStore } from "./adapters/secret-store.ts";

export default createApp({ bundle });
