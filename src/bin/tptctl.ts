#!/usr/bin/env node
// `tptctl`: the Threeport CLI.
import { main } from '../cli/main.js';

process.exitCode = await main(process.argv);
