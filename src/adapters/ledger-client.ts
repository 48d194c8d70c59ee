// The core's Ledger interface over the RunLedger Durable Object namespace: one object per run key.

import type { CommitInput, CommitOutcome, Ledger } from "../core/ledger.ts";
import type { RunLedger } from "./run-ledger.ts";

export class DurableLedger implements Ledger {
  readonly ns: DurableObjectNamespace<RunLedger>;

  constructor(ns: DurableObjectNamespace<RunLedger>) {
    this.ns = ns;
  }

  #stub(runKey: string): DurableObjectStub<RunLedger> {
    return this.ns.get(this.ns.idFromName(runKey));
  }

  async commit(runKey: string, input: CommitInput): Promise<CommitOutcome> {
    return (await this.#stub(runKey).commit(input)) as CommitOutcome;
  }

  async peek(runKey: string, singleUse: string): Promise<{ replayed: boolean; runEnded: boolean }> {
    return await this.#stub(runKey).peek(singleUse);
  }
}
