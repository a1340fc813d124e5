import { parentPort } from 'node:worker_threads';
import { serveNativeCanonical } from './native-canonical.js';

// Worker side of native-canonical.ts: native tasks converted to state.bin, one at a time.
serveNativeCanonical(parentPort!);
