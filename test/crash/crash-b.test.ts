import { crashSuite } from './suite.js';

// The other half of the kill harness (suite.ts): migrate and both conversions.
crashSuite(['migrate (value step)', 'convert --to native', 'convert --to canonical'], false);
