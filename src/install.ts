// Where this package's files are, whether run from the repository or an npm install:
// compiled code lives at dist/src/, two levels below the package root.
import { fileURLToPath } from 'node:url';

export const packageRoot = fileURLToPath(new URL('../../', import.meta.url));

export const loaderPath = `${packageRoot}bpf/build/causeway-loader`;
