// What the benchmarks read from Linux /proc: the live processes, their command lines, process
// groups and resident memory. A process that exits while it is being read is simply left out.
import { readdirSync, readFileSync } from 'node:fs';

/** Resident memory of `pid` in bytes (VmRSS), or undefined when it is gone. */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Every live process: its PID, command line (argv) and process group. */
export function processes(): Array<{ pid: number; argv: string[]; pgid: number }> {
  const out: Array<{ pid: number; argv: string[]; pgid: number }> = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      // The command name in parentheses may hold spaces; the fields after it are fixed.
      const pgid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
      out.push({ pid: Number(d), argv: readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0'), pgid });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** RSS in bytes summed over a process group. */
export function groupRssBytes(pgid: number): number {
  return processes()
    .filter((p) => p.pgid === pgid)
    .reduce((sum, p) => sum + (rssBytes(p.pid) ?? 0), 0);
}
