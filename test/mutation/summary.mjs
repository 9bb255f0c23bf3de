#!/usr/bin/env node
/**
 * Reads a StrykerJS report and prints the score and every surviving mutant
 * (docs/mutation.md, "Reading the report").
 *
 *   node test/mutation/summary.mjs                                  # reports/mutation/mutation.json
 *   node test/mutation/summary.mjs reports/mutation/mutants.ndjson  # live, while `npm run mutate` runs
 *   node test/mutation/summary.mjs a.json b.json                    # several partial runs, merged
 *
 * Score here = (killed + timeout) / (killed + timeout + survived); mutants
 * with no coverage are counted apart (with coverageAnalysis "off" Stryker
 * reports none), compile and runtime errors are left out, as Stryker does.
 */
import { readFileSync } from 'node:fs';

const files = process.argv.slice(2);
if (files.length === 0) files.push('reports/mutation/mutation.json');

const mutants = [];
const sources = new Map();
for (const f of files) {
  const text = readFileSync(f, 'utf8');
  if (f.endsWith('.ndjson')) {
    for (const line of text.split('\n')) if (line.trim()) mutants.push(JSON.parse(line));
    continue;
  }
  const report = JSON.parse(text);
  for (const [file, r] of Object.entries(report.files)) {
    sources.set(file, r.source.split('\n'));
    for (const m of r.mutants) {
      mutants.push({
        id: m.id,
        file,
        line: m.location.start.line,
        column: m.location.start.column,
        mutator: m.mutatorName,
        replacement: m.replacement,
        status: m.status,
      });
    }
  }
}

const count = (s) => mutants.filter((m) => m.status === s).length;
const killed = count('Killed');
const timeout = count('Timeout');
const survived = count('Survived');
const noCoverage = count('NoCoverage');
const errors = count('CompileError') + count('RuntimeError');
const pct = (n, d) => (d === 0 ? 'n/a' : `${((100 * n) / d).toFixed(1)} %`);
console.log(`mutants ${mutants.length}: killed ${killed}, timeout ${timeout}, survived ${survived}, no coverage ${noCoverage}, errors ${errors}`);
console.log(`score (killed + timeout) / (killed + timeout + survived) = ${pct(killed + timeout, killed + timeout + survived)}`);
console.log(`score with no-coverage counted as survived = ${pct(killed + timeout, killed + timeout + survived + noCoverage)}`);

const byFile = new Map();
for (const m of mutants) {
  const t = byFile.get(m.file) ?? { k: 0, s: 0 };
  if (m.status === 'Killed' || m.status === 'Timeout') t.k++;
  if (m.status === 'Survived' || m.status === 'NoCoverage') t.s++;
  byFile.set(m.file, t);
}
console.log('\nper file: killed+timeout / survived+no-coverage');
for (const [f, t] of byFile) console.log(`  ${f}: ${t.k} / ${t.s}  (${pct(t.k, t.k + t.s)})`);

const left = mutants.filter((m) => m.status === 'Survived' || m.status === 'NoCoverage').sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line);
if (left.length > 0) console.log('\nsurvivors (file:line:column  mutator  original -> replacement):');
for (const m of left) {
  const src = sources.get(m.file)?.[m.line - 1]?.trim() ?? '';
  const rep = String(m.replacement ?? '')
    .replace(/\s+/g, ' ')
    .slice(0, 100);
  console.log(`  ${m.id}\t${m.file}:${m.line}:${m.column}\t${m.mutator}\t${m.status === 'NoCoverage' ? '(no coverage) ' : ''}-> ${rep}`);
  if (src) console.log(`\t\t${src.slice(0, 140)}`);
}
