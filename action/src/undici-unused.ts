// Stands in for undici inside the action's bundle (scripts/build-action.ts aliases it here). @actions/http-client
// imports undici only for ProxyAgent, which only its getAgentDispatcher (a dispatcher for callers using fetch)
// constructs; the action's one use of that client, core.getIDToken, goes through Node's http module and the
// `tunnel` proxy agent instead. Bundling undici for nothing made it most of the bundle and most of the
// action's load time (docs/benchmarks.md, The action's overhead).

/** Never constructed by the action; fails loudly if a future code path starts to. */
export class ProxyAgent {
  constructor() {
    throw new Error("undici is not bundled into the runpass action (action/src/undici-unused.ts)");
  }
}
