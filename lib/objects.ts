/**
 * A local directory used as an object store.
 *
 * @module
 */

/** Options for {@linkcode ObjectStore}. */
export interface ObjectStoreOptions {
  /**
   * Size of the chunks `get` yields, in bytes.
   *
   * @default {65536}
   */
  chunkSize?: number;
}

/**
 * Objects under a root directory, read and written as streams.
 */
export class ObjectStore {
  /** The absolute root directory. */
  readonly root: string;
  /** Chunk size of reads, in bytes. */
  readonly chunkSize: number;

  /**
   * Creates a store rooted at `root`.
   *
   * @param root The directory that holds the objects.
   * @param options Chunk size.
   */
  constructor(root: string, options: ObjectStoreOptions = {}) {
    this.root = root;
    this.chunkSize = options.chunkSize ?? 65536;
  }
}
