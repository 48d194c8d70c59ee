// `runpass admin connections …`: store, list, show, verify, rotate-root, sweep and delete the database connections
// the postgres grant uses (docs/api.md, "Connections"). A connection URL carries the admin password, so it comes
// from an environment variable or a file, never from argv (shell history, process lists), and is never printed.

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CONNECTION_NAME } from "../core/grants/postgres.ts";
import type { Problem } from "../core/policy/load.ts";
import type { PolicyBundle } from "../core/policy/types.ts";
import { type AdminTarget, adminCall, adminTarget } from "./admin.ts";
import { actorHeader, locateIn } from "./secrets.ts";
import { UsageError } from "./usage-error.ts";

export const CONNECTIONS_USAGE = `  admin connections put NAME --kind postgres (--url-env VAR | --url-file FILE) [--tls verify-full|disable]
                        [--hyperdrive BINDING] [--runner-host HOST] [--runner-port N] [--url URL]
      Stores a connection for the postgres grant. The connection URL (postgres://admin:password@host:5432/db)
      is read from the environment variable VAR or from FILE, never from the command line, and never shown.
  admin connections list | show NAME | verify NAME | rotate-root NAME | sweep NAME | delete NAME [--unreachable] [--url URL]
      Metadata only; verify checks the admin role can create roles; rotate-root gives it a password nobody
      knows; sweep drops runpass roles whose lease has ended; delete refuses while the database holds runpass
      roles (--unreachable: delete a connection whose database is gone without checking).`;

function oneName(command: string, positionals: string[]): string {
  if (positionals.length !== 1) throw new UsageError(`admin connections ${command} needs exactly one NAME`);
  const name = positionals[0] as string;
  if (!CONNECTION_NAME.test(name)) throw new UsageError(`"${name}" is not a connection name (a-z 0-9 _ -)`);
  return name;
}

async function connectionUrl(values: { "url-env"?: string; "url-file"?: string }): Promise<string> {
  if ((values["url-env"] === undefined) === (values["url-file"] === undefined)) {
    throw new UsageError("admin connections put needs exactly one of --url-env VAR or --url-file FILE");
  }
  if (values["url-env"] !== undefined) {
    const v = process.env[values["url-env"]];
    if (!v) throw new UsageError(`the environment variable ${values["url-env"]} is not set`);
    return v.trim();
  }
  return (await readFile(values["url-file"] as string, "utf8")).trim();
}

/** `runpass admin connections <command>`. */
export async function adminConnections(root: string, args: string[]): Promise<number> {
  const [command, ...rest] = args;
  if (rest.some((a) => /^--(connection-)?url=?.*:\/\//.test(a) || /^postgres(ql)?:\/\//.test(a))) {
    throw new UsageError(
      "a connection URL never goes on the command line: use --url-env VAR or --url-file FILE (--url is the broker's)",
    );
  }
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
      url: { type: "string" },
      kind: { type: "string" },
      "url-env": { type: "string" },
      "url-file": { type: "string" },
      tls: { type: "string" },
      hyperdrive: { type: "string" },
      "runner-host": { type: "string" },
      "runner-port": { type: "string" },
      unreachable: { type: "boolean" },
    },
    allowPositionals: true,
  });
  const target = () => adminTarget(root, values.url);
  const path = (name: string, tail = "") => `/v1/admin/connections/${encodeURIComponent(name)}${tail}`;
  const print = (v: unknown) => console.log(JSON.stringify(v, null, 2));
  switch (command) {
    case "put": {
      const name = oneName(command, positionals);
      if (values.kind !== "postgres") throw new UsageError("admin connections put needs --kind postgres");
      const body: Record<string, unknown> = { kind: "postgres", url: await connectionUrl(values) };
      if (values.tls !== undefined) body.tls = values.tls;
      if (values.hyperdrive !== undefined) body.hyperdrive = values.hyperdrive;
      if (values["runner-host"] !== undefined) body.runner_host = values["runner-host"];
      if (values["runner-port"] !== undefined) body.runner_port = Number(values["runner-port"]);
      print(
        await adminCall(target(), path(name), { method: "PUT", body: JSON.stringify(body) }, actorHeader()),
      );
      return 0;
    }
    case "list":
      print(await adminCall(target(), "/v1/admin/connections"));
      return 0;
    case "show":
      print(await adminCall(target(), path(oneName(command, positionals))));
      return 0;
    case "verify":
    case "rotate-root":
    case "sweep":
      print(
        await adminCall(
          target(),
          path(oneName(command, positionals), `/${command}`),
          { method: "POST" },
          actorHeader(),
        ),
      );
      return 0;
    case "delete":
      await adminCall(
        target(),
        path(oneName(command, positionals), values.unreachable ? "?unreachable=true" : ""),
        { method: "DELETE" },
        actorHeader(),
      );
      return 0;
    default:
      throw new UsageError(`unknown command "admin connections ${command ?? ""}"`);
  }
}

/** `policy check --admin-url`: every postgres grant's connection must be stored at the broker. */
export async function checkConnectionGrants(
  target: AdminTarget,
  dir: string,
  bundle: PolicyBundle,
): Promise<{ problems: Problem[]; checked: number }> {
  const users = bundle.policies.filter((p) => p.grants.postgres);
  if (users.length === 0) return { problems: [], checked: 0 };
  const listed = (await adminCall(target, "/v1/admin/connections")) as {
    connections?: Array<{ name: string }>;
  };
  const names = new Set((listed.connections ?? []).map((c) => c.name));
  const problems: Problem[] = [];
  for (const policy of users) {
    const connection = policy.grants.postgres?.connection as string;
    if (names.has(connection)) continue;
    const file = join(dir, `${policy.name}.yaml`);
    problems.push({
      file,
      ...(await locateIn(file, ["grants", "postgres", "connection"])),
      severity: "error",
      message: `grants.postgres.connection: no connection "${connection}" at ${target.url} (runpass admin connections put)`,
    });
  }
  return { problems, checked: users.length };
}
