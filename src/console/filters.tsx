// Filter-form fields shared by the runs and audit pages: text inputs, and selects whose empty choice means "any".

/** The repository id, project id and policy inputs both lists filter by. */
export function ScopeFields(props: { repository_id?: string; project_id?: string; policy?: string }) {
  return (
    <>
      <label>
        Repository id
        <input name="repository_id" value={props.repository_id ?? ""} inputmode="numeric" />
      </label>
      <label>
        Project id
        <input name="project_id" value={props.project_id ?? ""} inputmode="numeric" />
      </label>
      <label>
        Policy
        <input name="policy" value={props.policy ?? ""} />
      </label>
    </>
  );
}

/** A labelled select of `choices` with "any" first (the empty value). */
export function AnyOf(props: {
  label: string;
  name: string;
  choices: readonly string[];
  value: string | undefined;
}) {
  return (
    <label>
      {props.label}
      <select name={props.name}>
        <option value="" selected={!props.value}>
          any
        </option>
        {props.choices.map((choice) => (
          <option value={choice} selected={props.value === choice}>
            {choice}
          </option>
        ))}
      </select>
    </label>
  );
}
