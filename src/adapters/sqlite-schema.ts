// A Durable Object's SQLite layout as data: the tables it needs and the columns added to them since they first
// shipped. Applied on every start (idempotent), so an object an older version created is brought up to date
// before it serves anything.

/** A column added after its table first shipped: older objects get it through ALTER TABLE … ADD COLUMN. */
export interface AddedColumn {
  table: string;
  name: string;
  /** The column's type and constraints, as in ADD COLUMN (existing rows take its default, or NULL). */
  type: string;
}

/** Every CREATE … IF NOT EXISTS statement (each ending in ";"), then the columns added since, oldest first. */
export interface SqliteSchema {
  statements: readonly string[];
  added: readonly AddedColumn[];
}

/** Creates whatever is missing, then adds each column an older object lacks. */
export function applySchema(sql: SqlStorage, schema: SqliteSchema): void {
  sql.exec(schema.statements.join("\n"));
  const columns = new Map<string, Set<string>>();
  for (const { table, name, type } of schema.added) {
    let have = columns.get(table);
    if (!have) {
      have = new Set(
        sql
          .exec<{ name: string }>(`PRAGMA table_info(${table})`)
          .toArray()
          .map((c) => c.name),
      );
      columns.set(table, have);
    }
    if (have.has(name)) continue;
    sql.exec(`ALTER TABLE ${table} ADD COLUMN ${name} ${type}`);
    have.add(name);
  }
}
