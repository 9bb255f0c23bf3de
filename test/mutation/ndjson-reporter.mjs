/**
 * A Stryker reporter plugin for `npm run mutate` (stryker.config.mjs): one
 * JSON line per mutant to reports/mutation/mutants.ndjson as soon as it is
 * tested, so a long run can be followed (and is not lost when stopped) before
 * the html/json reports are written at its end. Read it with
 * `node test/mutation/summary.mjs reports/mutation/mutants.ndjson`.
 */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { PluginKind, declareClassPlugin } from '@stryker-mutator/api/plugin';

/** VALMOVE_MUTANTS_NDJSON moves it (two runs at once must not share the file). */
const OUT = process.env.VALMOVE_MUTANTS_NDJSON ?? 'reports/mutation/mutants.ndjson';

class NdjsonReporter {
  onDryRunCompleted() {
    mkdirSync(dirname(OUT), { recursive: true });
    writeFileSync(OUT, '');
  }

  onMutantTested(m) {
    const line = {
      id: m.id,
      file: m.fileName,
      line: m.location.start.line,
      column: m.location.start.column + 1,
      mutator: m.mutatorName,
      replacement: m.replacement,
      status: m.status,
    };
    appendFileSync(OUT, `${JSON.stringify(line)}\n`);
  }
}

export const strykerPlugins = [declareClassPlugin(PluginKind.Reporter, 'ndjson', NdjsonReporter)];
