// The YAML parser, loaded on first use. Validation is synchronous, so this is a `require` of
// yaml's Node build rather than an `import()`: an API replica that never receives a manifest or
// Helm values does not pay yaml's load (about 70 ms and 9 MB, bench/startup).
import { createRequire } from 'node:module';

type Yaml = typeof import('yaml');
let loaded: Yaml | undefined;

export function yaml(): Yaml {
  return (loaded ??= createRequire(import.meta.url)('yaml') as Yaml);
}
