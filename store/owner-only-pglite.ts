// Opens PGlite on a directory that only its owner can read or write, whatever the process umask:
// the directory holds every key's hash, and with a pepper-less setup those hashes can be checked
// against guesses by anyone who can read them.
import { chmodSync, lstatSync, mkdirSync, readdirSync } from "node:fs";
import path from "node:path";
// The types of the ESM build, which is what import() below loads.
import type { PGlite } from "@electric-sql/pglite" with { "resolution-mode": "import" };

const GROUP_AND_OTHER = 0o077;

/** The two members of Emscripten's NODEFS node operations that decide a host file's mode. */
interface NodeOperations {
  mknod(parent: unknown, name: string, mode: number, dev: number): unknown;
  setattr(node: unknown, attributes: { mode?: number | null }): void;
}

/** Drops the group and other bits of `entry` and of everything under it, without following symbolic links. */
function tighten(entry: string): void {
  const stat = lstatSync(entry);
  if (stat.isSymbolicLink()) return;
  if (stat.mode & GROUP_AND_OTHER) {
    try {
      chmodSync(entry, stat.mode & 0o700);
    } catch (error) {
      // Not ours (a directory made by root for this user, say): its owner decides its mode.
      if ((error as NodeJS.ErrnoException).code !== "EPERM") throw error;
    }
  }
  if (stat.isDirectory()) for (const name of readdirSync(entry)) tighten(path.join(entry, name));
}

/**
 * Creates the directory 0700 if needed, closes up what an earlier version (or another tool) left
 * readable by others, and opens PGlite on it. The caller holds the directory's lock.
 */
export async function openOwnerOnlyPglite(directory: string): Promise<PGlite> {
  try {
    mkdirSync(directory, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  tighten(directory);
  // Loaded here, as the rest of PGlite, so that apps on PostgreSQL never load it.
  const [{ PGlite }, { NodeFS }] = await Promise.all([import("@electric-sql/pglite"), import("@electric-sql/pglite/nodefs")]);

  /**
   * PGlite's Node file system (NodeFS) mounts Emscripten's NODEFS on the directory. NODEFS creates
   * host files and directories with the mode asked for inside the database, unmasked: initdb's files
   * come out 0666 and its directories 0777, less only the process umask. This subclass wraps the
   * mounted NODEFS's mknod and setattr (chmod) so that the group and other bits are dropped: files
   * are created 0600 and directories 0700 directly. If a PGlite release renames those internals the
   * wrapper is skipped; the 0700 directory and the tightening on each open still hold.
   */
  class OwnerOnlyNodeFS extends NodeFS {
    override async init(...args: Parameters<InstanceType<typeof NodeFS>["init"]>) {
      const { emscriptenOpts } = await super.init(...args);
      const restrict = (module: unknown) => {
        const operations = (module as { NODEFS?: { node_ops?: Partial<NodeOperations> } }).NODEFS?.node_ops;
        const { mknod, setattr } = operations ?? {};
        if (!operations || typeof mknod !== "function" || typeof setattr !== "function") return;
        operations.mknod = (parent, name, mode, dev) => mknod(parent, name, mode & ~GROUP_AND_OTHER, dev);
        operations.setattr = (node, attributes) =>
          setattr(node, typeof attributes.mode === "number" ? { ...attributes, mode: attributes.mode & ~GROUP_AND_OTHER } : attributes);
      };
      // After NodeFS's own preRun, which mounts NODEFS.
      return { emscriptenOpts: { ...emscriptenOpts, preRun: [...(emscriptenOpts.preRun ?? []), restrict] } };
    }
  }

  return new PGlite({ fs: new OwnerOnlyNodeFS(directory) });
}
