/**
 * A machine's state value as text, for logs, reports and test paths: a
 * string, never JSON inside a log field (issue 21: `"from":"reservingChannel"`,
 * not `"from":"\\"reservingChannel\\""`).
 */

/** A state value as text: "phase.state", and the regions of a parallel state joined by " | ". */
export function stateName(value: unknown): string {
  if (typeof value === 'string') return value;
  if (!value || typeof value !== 'object') return '';
  return Object.entries(value as Record<string, unknown>)
    .map(([k, v]) => {
      const inner = stateName(v);
      return inner === '' ? k : inner.includes(' | ') ? `${k}.(${inner})` : `${k}.${inner}`;
    })
    .join(' | ');
}
