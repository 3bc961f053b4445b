/**
 * The options of `cli.ts --benchmark`, in a module of their own: the
 * top-level `--help` lists them without loading the benchmark.
 *
 * @module
 */

/** The benchmark's options, as `cli.ts --help` and `--benchmark --help` list them. */
export const BENCHMARK_OPTIONS: ReadonlyArray<readonly [string, string]> = [
  ["--benchmark", "Run it, print a table, write benchmark.{json,csv,svg}"],
  [
    "--tasks N",
    "Tasks per run (default 1000: about 65 s in all with\nthe default producers, almost all of it baseline)",
  ],
  ["--producers LIST", "Comma-separated producer counts (default 50,100)"],
  ["--workers W", "Optimized queue workers (default 2)"],
  ["--concurrency C", "Tasks at once per worker (default 64)"],
  ["--out DIR", "Output directory (default results)"],
  [
    "--db DIR|URL",
    "Directory for the SQLite files (default: the --out\ndirectory), or a postgres:// URL: each optimized run\nthen uses a fresh schema of that database, dropped\nafterwards (SLUICE_DB is used when it is a postgres://\nURL)",
  ],
];
