// The relay's OpenAPI document, kept as tools/dashboard/openapi.json so the dashboard's API types
// (openapi.d.ts, by openapi-typescript) come from it. Used by scripts/check-dashboard.sh:
//
//   node openapi.mjs check LIVE.json   exit 1 when LIVE.json (the running relay's) differs
//   node openapi.mjs write LIVE.json   store LIVE.json as the snapshot
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const snapshot = path.join(here, "openapi.json");
const [mode, live] = process.argv.slice(2);
if (!["check", "write"].includes(mode) || !live) {
  console.error("usage: node openapi.mjs check|write LIVE.json");
  process.exit(2);
}
const doc = JSON.parse(fs.readFileSync(live, "utf8"));
const text = `${JSON.stringify(doc, null, 2)}\n`;
if (mode === "write") {
  fs.writeFileSync(snapshot, text);
  process.exit(0);
}
const stored = fs.existsSync(snapshot) ? fs.readFileSync(snapshot, "utf8") : "";
if (stored === text) process.exit(0);

// Say which schemas and paths changed, so the message points at what to look at.
const old = stored ? JSON.parse(stored) : {};
/** @param {Record<string, unknown>} a @param {Record<string, unknown>} b */
const changed = (a = {}, b = {}) =>
  [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
const schemas = changed(old.components?.schemas, doc.components?.schemas);
const paths = changed(old.paths, doc.paths);
console.error("check-dashboard: the relay's OpenAPI document differs from tools/dashboard/openapi.json");
if (schemas.length) console.error(`  schemas: ${schemas.join(", ")}`);
if (paths.length) console.error(`  paths: ${paths.join(", ")}`);
console.error("  run scripts/check-dashboard.sh --update, then fix what the type check finds in relay/assets");
process.exit(1);
