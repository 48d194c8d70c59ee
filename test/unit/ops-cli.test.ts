// `runpass init` (the secrets file, --force, --apply against a stand-in wrangler that records its calls),
// `runpass keys rotate` and `runpass github-app manifest` as a user runs them (docs/deploy.md).

import { chmod, cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseMasterKeys } from "../../src/core/secrets/crypto.ts";
import { parseSshCaKeys } from "../../src/core/ssh/ca-keys.ts";
import { X509Authority } from "../../src/core/x509/ca.ts";
import { ROOT, runpass } from "../support/run-cli.ts";

const D1_ID = "5f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b";
const KV_ID = "e29b263ab50e42ce9b637fa8370175e8";

/** A stand-in `wrangler`: records each call's arguments (and, for secret bulk, the names in the file) and answers as wrangler 4 does. */
const STAND_IN = `#!/bin/sh
printf '%s\\n' "$*" >> "$WRANGLER_LOG"
case "$1 $2" in
  "d1 create")
    printf '%s\\n' "✅ Successfully created DB '$3' in region WEUR" "Created your new D1 database." "" \\
      "To access your new D1 Database in your Worker, add the following snippet to your configuration file:" \\
      '{' '  "d1_databases": [' '    {' '      "binding": "runpass_audit",' "      \\"database_name\\": \\"$3\\"," \\
      '      "database_id": "${D1_ID}"' '    }' '  ]' '}' ;;
  "kv namespace")
    printf '%s\\n' "🌀 Creating namespace with title \\"$4\\"" "✨ Success!" \\
      "To access your new KV Namespace in your Worker, add the following snippet to your configuration file:" \\
      '{' '  "kv_namespaces": [' '    {' "      \\"binding\\": \\"$4\\"," '      "id": "${KV_ID}"' '    }' '  ]' '}' ;;
  "secret bulk")
    test -f "$3" || { echo "no such file $3" >&2; exit 1; }
    grep -o '"[A-Z][A-Z0-9_]*":' "$3" | tr -d '":' | sed 's/^/NAME /' >> "$WRANGLER_LOG"
    echo "✨ Success! Uploaded secrets" ;;
  *) echo "stand-in wrangler: unexpected $*" >&2; exit 9 ;;
esac
`;

let work: string;
let bin: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "runpass-ops-"));
  bin = join(work, "bin");
  await mkdir(bin);
  await writeFile(join(bin, "wrangler"), STAND_IN);
  await chmod(join(bin, "wrangler"), 0o755);
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A fresh project folder with the repository's wrangler.toml. */
async function project(name: string): Promise<string> {
  const dir = join(work, name);
  await mkdir(dir);
  await cp(join(ROOT, "wrangler.toml"), join(dir, "wrangler.toml"));
  return dir;
}

async function readSecrets(dir: string): Promise<Record<string, string>> {
  return JSON.parse(await readFile(join(dir, ".runpass/secrets.json"), "utf8")) as Record<string, string>;
}

/** Every value of the file, and every private member inside its JSON values: none may be printed. */
function secretStrings(secrets: Record<string, string>): string[] {
  const out = Object.values(secrets);
  for (const v of Object.values(secrets)) {
    if (!v.startsWith("[") && !v.startsWith("{")) continue;
    JSON.stringify(JSON.parse(v), (k, inner) => {
      if (typeof inner === "string" && ["d", "p", "q", "dp", "dq", "qi", "key"].includes(k)) out.push(inner);
      if (typeof inner === "string" && /^m-/.test(k)) out.push(inner);
      return inner;
    });
  }
  return out;
}

function expectNothingSecret(output: string, secrets: Record<string, string>): void {
  for (const value of secretStrings(secrets))
    expect(output.includes(value), "a secret value was printed").toBe(false);
}

describe("runpass init", { timeout: 120_000 }, () => {
  it("writes every secret once to a 0600, git-ignored file in the formats the Worker reads, printing none", async () => {
    const dir = await project("plain");
    const run = await runpass(["init", "--issuer-url", "https://runpass.acme.dev"], { cwd: dir });
    expect(run.code, run.stderr).toBe(0);
    const file = join(dir, ".runpass/secrets.json");
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, ".runpass"))).mode & 0o777).toBe(0o700);
    expect(await readFile(join(dir, ".gitignore"), "utf8")).toContain(".runpass/\n");
    const secrets = await readSecrets(dir);
    expect(Object.keys(secrets).sort()).toEqual(
      [
        "GITHUB_WEBHOOK_SECRET",
        "GITLAB_WEBHOOK_TOKEN",
        "RUNPASS_ADMIN_TOKEN",
        "RUNPASS_ALERT_SECRET",
        "RUNPASS_AUDIT_KEY",
        "RUNPASS_MASTER_KEYS",
        "RUNPASS_SIGNING_KEYS",
      ].sort(),
    );
    const signing = JSON.parse(secrets.RUNPASS_SIGNING_KEYS as string) as JWK[];
    expect(signing.map((k) => [k.alg, k.kty, typeof k.d, typeof k.kid])).toEqual([
      ["ES256", "EC", "string", "string"],
      ["RS256", "RSA", "string", "string"],
    ]);
    expect((await parseMasterKeys(secrets.RUNPASS_MASTER_KEYS)).keys.size).toBe(1);
    expect((secrets.RUNPASS_AUDIT_KEY as string).length).toBeGreaterThanOrEqual(32);
    expect((secrets.RUNPASS_ADMIN_TOKEN as string).length).toBeGreaterThanOrEqual(16);
    expect(new Set(Object.values(secrets)).size).toBe(Object.keys(secrets).length);
    expectNothingSecret(run.stdout + run.stderr, secrets);
    expect(run.stdout).toContain("npx wrangler secret bulk .runpass/secrets.json");
    expect(run.stdout).toContain("npx runpass doctor --url https://runpass.acme.dev");
  });

  it("refuses to replace the file without --force; --force writes new keys, still 0600", async () => {
    const dir = await project("force");
    expect((await runpass(["init"], { cwd: dir })).code).toBe(0);
    const first = await readFile(join(dir, ".runpass/secrets.json"), "utf8");
    const again = await runpass(["init"], { cwd: dir });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("already exists");
    expect(await readFile(join(dir, ".runpass/secrets.json"), "utf8")).toBe(first);
    const forced = await runpass(["init", "--force"], { cwd: dir });
    expect(forced.code).toBe(0);
    const second = await readSecrets(dir);
    expect(second.RUNPASS_AUDIT_KEY).not.toBe(
      (JSON.parse(first) as Record<string, string>).RUNPASS_AUDIT_KEY,
    );
    expect((await stat(join(dir, ".runpass/secrets.json"))).mode & 0o777).toBe(0o600);
    expectNothingSecret(forced.stdout + forced.stderr, second);
    expectNothingSecret(again.stdout + again.stderr, JSON.parse(first) as Record<string, string>);
  });

  it("--with ssh,x509 adds an SSH CA key and an X.509 issuing CA that the grants load", async () => {
    const dir = await project("engines");
    const run = await runpass(["init", "--with", "ssh,x509", "--out", "keys/prod.json"], { cwd: dir });
    expect(run.code, run.stderr).toBe(0);
    const secrets = JSON.parse(await readFile(join(dir, "keys/prod.json"), "utf8")) as Record<string, string>;
    const ssh = await parseSshCaKeys(secrets.RUNPASS_SSH_CA_KEYS);
    expect(ssh).toBeDefined();
    const ca = await X509Authority.fromConfig(secrets.RUNPASS_X509_CA);
    expect(ca.issuing.certificate.subject).toContain("CN=runpass CI issuing CA");
    expectNothingSecret(run.stdout + run.stderr, secrets);
    expect((await runpass(["init", "--with", "gpg"], { cwd: dir })).code).toBe(2);
  });

  it("--apply drives wrangler (each command shown) and writes the ids and RUNPASS_ISSUER_URL into wrangler.toml", async () => {
    const dir = await project("apply");
    const log = join(dir, "wrangler.log");
    const env = { PATH: `${bin}:${process.env.PATH}`, WRANGLER_LOG: log };
    const run = await runpass(["init", "--issuer-url", "https://runpass.acme.dev/", "--apply"], {
      cwd: dir,
      env,
    });
    expect(run.code, run.stderr).toBe(0);
    const calls = (await readFile(log, "utf8")).trim().split("\n");
    expect(calls.filter((c) => !c.startsWith("NAME "))).toEqual([
      "d1 create runpass-audit",
      "kv namespace create POLICY_KV",
      "secret bulk .runpass/secrets.json",
    ]);
    const secrets = await readSecrets(dir);
    expect(
      calls
        .filter((c) => c.startsWith("NAME "))
        .map((c) => c.slice(5))
        .sort(),
    ).toEqual(Object.keys(secrets).sort());
    for (const c of [
      "d1 create runpass-audit",
      "kv namespace create POLICY_KV",
      "secret bulk .runpass/secrets.json",
    ])
      expect(run.stderr).toContain(`$ wrangler ${c}`);
    const toml = await readFile(join(dir, "wrangler.toml"), "utf8");
    expect(toml).toContain(`database_id = "${D1_ID}"`);
    expect(toml).toContain(`id = "${KV_ID}"`);
    expect(toml).toContain('RUNPASS_ISSUER_URL = "https://runpass.acme.dev"');
    expect(toml).toContain("[[durable_objects.bindings]]");
    expectNothingSecret(run.stdout + run.stderr, secrets);

    // Again: the same secrets are uploaded again; D1 and KV already exist and are kept.
    const rerun = await runpass(["init", "--issuer-url", "https://runpass.acme.dev", "--apply"], {
      cwd: dir,
      env,
    });
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(await readSecrets(dir)).toEqual(secrets);
    const after = (await readFile(log, "utf8"))
      .trim()
      .split("\n")
      .filter((c) => !c.startsWith("NAME "));
    expect(after.slice(3)).toEqual(["secret bulk .runpass/secrets.json"]);
  });

  it("--apply stops at the first wrangler failure and says what failed; --apply needs an https --issuer-url", async () => {
    const dir = await project("fail");
    await writeFile(join(bin, "wrangler-fail"), "#!/bin/sh\nexit 3\n");
    const failBin = join(dir, "bin");
    await mkdir(failBin);
    await cp(join(bin, "wrangler-fail"), join(failBin, "wrangler"));
    await chmod(join(failBin, "wrangler"), 0o755);
    const run = await runpass(["init", "--issuer-url", "https://runpass.acme.dev", "--apply"], {
      cwd: dir,
      env: { PATH: `${failBin}:${process.env.PATH}` },
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("wrangler d1 create runpass-audit failed (exit 3)");
    expect((await runpass(["init", "--apply"], { cwd: await project("no-url") })).code).toBe(2);
    expect(
      (await runpass(["init", "--issuer-url", "http://runpass.acme.dev"], { cwd: await project("http") }))
        .code,
    ).toBe(2);
  });
});

// Each rotation is a CLI start (a few seconds on a loaded machine): these tests run a dozen.
describe("runpass keys rotate", { timeout: 180_000 }, () => {
  it("signing: the new key first, the old kept; master: added, then --activate; nothing printed", async () => {
    const dir = await project("rotate");
    expect((await runpass(["init"], { cwd: dir })).code).toBe(0);
    const before = await readSecrets(dir);
    const oldKids = (JSON.parse(before.RUNPASS_SIGNING_KEYS as string) as JWK[]).map((k) => k.kid);

    const signing = await runpass(["keys", "rotate", "signing"], { cwd: dir });
    expect(signing.code, signing.stderr).toBe(0);
    const after = await readSecrets(dir);
    const keys = JSON.parse(after.RUNPASS_SIGNING_KEYS as string) as JWK[];
    expect(keys).toHaveLength(4);
    expect(keys.slice(2).map((k) => k.kid)).toEqual(oldKids);
    expect(keys.slice(2)).toEqual(JSON.parse(before.RUNPASS_SIGNING_KEYS as string));
    expect(keys[0]?.alg).toBe("ES256");
    expect(oldKids).not.toContain(keys[0]?.kid);
    expect(signing.stdout).toContain("wrangler secret bulk");
    expectNothingSecret(signing.stdout + signing.stderr, after);
    expect(after.RUNPASS_AUDIT_KEY).toBe(before.RUNPASS_AUDIT_KEY);

    const oldMaster = await parseMasterKeys(before.RUNPASS_MASTER_KEYS);
    expect((await runpass(["keys", "rotate", "master"], { cwd: dir })).code).toBe(0);
    const added = await parseMasterKeys((await readSecrets(dir)).RUNPASS_MASTER_KEYS);
    expect(added.active).toBe(oldMaster.active);
    expect(added.keys.size).toBe(2);
    const activate = await runpass(["keys", "rotate", "master", "--activate"], { cwd: dir });
    expect(activate.code).toBe(0);
    const active = await parseMasterKeys((await readSecrets(dir)).RUNPASS_MASTER_KEYS);
    expect(active.active).not.toBe(oldMaster.active);
    expect([...active.keys.keys()]).toContain(oldMaster.active);
    expect(activate.stdout).toContain("admin secrets rewrap");
    expectNothingSecret(activate.stdout + activate.stderr, await readSecrets(dir));
    expect((await runpass(["keys", "rotate", "master", "--activate"], { cwd: dir })).code).toBe(1);
    expect((await runpass(["keys", "rotate", "ssh-ca"], { cwd: dir })).code).toBe(1);
    expect((await runpass(["keys", "rotate", "audit"], { cwd: dir })).code).toBe(2);
    expect((await runpass(["keys", "rotate", "signing"], { cwd: await project("empty") })).code).toBe(1);
  });

  it("ssh-ca and x509-ca: the new CA is published first, then issues with --activate, the old kept; a second --activate is refused", async () => {
    const dir = await project("rotate-ca");
    expect((await runpass(["init", "--with", "ssh,x509"], { cwd: dir })).code).toBe(0);
    const before = await readSecrets(dir);
    const oldSsh = JSON.parse(before.RUNPASS_SSH_CA_KEYS as string) as JWK[];
    expect((await runpass(["keys", "rotate", "ssh-ca"], { cwd: dir })).code).toBe(0);
    const published = JSON.parse((await readSecrets(dir)).RUNPASS_SSH_CA_KEYS as string) as JWK[];
    expect(published[0]).toEqual(oldSsh[0]);
    expect((await runpass(["keys", "rotate", "ssh-ca", "--activate"], { cwd: dir })).code).toBe(0);
    const active = JSON.parse((await readSecrets(dir)).RUNPASS_SSH_CA_KEYS as string) as JWK[];
    expect(active.map((k) => k.kid)).toEqual([published[1]?.kid, oldSsh[0]?.kid]);
    expect((await parseSshCaKeys((await readSecrets(dir)).RUNPASS_SSH_CA_KEYS)).all.length).toBe(2);
    // A second --activate has no newly added key: refused, and the old CA is not promoted again.
    const again = await runpass(["keys", "rotate", "ssh-ca", "--activate"], { cwd: dir });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("no newly added key to activate");
    const still = JSON.parse((await readSecrets(dir)).RUNPASS_SSH_CA_KEYS as string) as JWK[];
    expect(still.map((k) => k.kid)).toEqual([published[1]?.kid, oldSsh[0]?.kid]);

    const oldCa = await X509Authority.fromConfig(before.RUNPASS_X509_CA);
    expect((await runpass(["keys", "rotate", "x509-ca"], { cwd: dir })).code).toBe(0);
    const both = await X509Authority.fromConfig((await readSecrets(dir)).RUNPASS_X509_CA);
    expect(both.cas.map((c) => c.id)).toEqual([oldCa.issuing.id, expect.any(String)]);
    expect((await runpass(["keys", "rotate", "x509-ca", "--activate"], { cwd: dir })).code).toBe(0);
    const rotated = await X509Authority.fromConfig((await readSecrets(dir)).RUNPASS_X509_CA);
    expect(rotated.cas.map((c) => c.id)).toEqual([both.cas[1]?.id, oldCa.issuing.id]);
    const twice = await runpass(["keys", "rotate", "x509-ca", "--activate"], { cwd: dir });
    expect(twice.code).toBe(1);
    expect(twice.stderr).toContain("no newly added CA to activate");
    const kept = await X509Authority.fromConfig((await readSecrets(dir)).RUNPASS_X509_CA);
    expect(kept.cas.map((c) => c.id)).toEqual([both.cas[1]?.id, oldCa.issuing.id]);
  });
});

describe("runpass github-app manifest", () => {
  it("prints the manifest for a policies folder: the union of github grants plus what the events need", async () => {
    const dir = join(work, "manifest-policies");
    await mkdir(dir);
    await writeFile(
      join(dir, "deploy.yaml"),
      `issuer: github
allow:
  repository_owner_id: "1342004"
  repository_id: "519345000"
  ref: refs/heads/main
  runner_environment: github-hosted
grants:
  github: { owner: acme, repositories: [api], permissions: { contents: write, pull_requests: read } }
`,
    );
    const run = await runpass([
      "github-app",
      "manifest",
      "--policies",
      dir,
      "--url",
      "https://runpass.acme.dev",
    ]);
    expect(run.code, run.stderr).toBe(0);
    const manifest = JSON.parse(run.stdout) as Record<string, unknown>;
    expect(manifest.default_permissions).toEqual({
      actions: "read",
      contents: "write",
      metadata: "read",
      pull_requests: "read",
      secret_scanning_alerts: "read",
    });
    expect(manifest.hook_attributes).toEqual({
      url: "https://runpass.acme.dev/v1/webhooks/github",
      active: true,
    });
    expect(manifest.default_events).toEqual(["workflow_run", "secret_scanning_alert"]);
    expect((await runpass(["github-app", "manifest", "--policies", dir])).code).toBe(2);
    expect(
      (await runpass(["github-app", "manifest", "--policies", dir, "--url", "http://runpass.acme.dev"])).code,
    ).toBe(2);
  });
});
