// Writes docs/dependency-graph.md from the compiled graph declarations (run after `tsc`).
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderGraphPage } from '../dist/src/controllers/graph-page.js';

const target = fileURLToPath(new URL('../docs/dependency-graph.md', import.meta.url));
writeFileSync(target, renderGraphPage());
console.log(`wrote ${target}`);
