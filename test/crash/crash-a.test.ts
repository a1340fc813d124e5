import { crashSuite } from './suite.js';

// Half of the kill harness (suite.ts): the relocations, rescale and edit.
crashSuite(['relocate (relative)', 'relocate (engine)', 'rescale 4→7', 'edit --rename'], true);
