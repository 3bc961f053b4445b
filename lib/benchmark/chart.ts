/**
 * A self-contained SVG chart of benchmark results: two panels of grouped
 * bars on log scales, throughput and P95 latency, one group per producer
 * count and one bar per implementation.
 *
 * @module
 */

/** One bar's data. */
export interface ChartRun {
  /** Implementation name; one colour each. */
  impl: string;
  /** Producer count; one group each. */
  producers: number;
  /** Tasks per second. */
  throughput_per_s: number;
  /** 95th percentile latency, ms. */
  p95_ms: number;
}

/** Options for {@linkcode renderChart}. */
export interface ChartOptions {
  /**
   * Title above both panels.
   *
   * @default {"Sluice benchmark"}
   */
  title?: string;
  /**
   * Subtitle (configuration, machine).
   *
   * @default {""}
   */
  subtitle?: string;
  /**
   * Width in px.
   *
   * @default {960}
   */
  width?: number;
  /**
   * Height in px.
   *
   * @default {480}
   */
  height?: number;
}

const PALETTE = ["#9aa5b1", "#2b7bb9", "#e07b39", "#3a9d5d", "#8e5ea2"];

/** Escapes text for XML content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(
    /[<>&"']/g,
    (c) =>
      ({
        "<": "&lt;",
        ">": "&gt;",
        "&": "&amp;",
        '"': "&quot;",
        "'": "&apos;",
      })[
        c
      ]!,
  );
}

function formatValue(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  if (value >= 100) return Math.round(value).toLocaleString("en-US");
  if (value >= 10) return value.toFixed(1);
  return value.toPrecision(2);
}

function formatTick(exp: number): string {
  const value = 10 ** exp;
  if (exp >= 6) return `${value / 1e6}M`;
  if (exp >= 3) return `${value / 1e3}k`;
  if (exp >= 0) return String(value);
  return value.toFixed(-exp);
}

interface Panel {
  x: number;
  y: number;
  width: number;
  height: number;
  title: string;
  unit: string;
  hint: string;
  value: (run: ChartRun) => number;
}

function renderPanel(
  panel: Panel,
  runs: readonly ChartRun[],
  impls: readonly string[],
  groups: readonly number[],
): string {
  const parts: string[] = [];
  const values = runs.map(panel.value).filter((v) => v > 0 && isFinite(v));
  const lo = Math.floor(Math.log10(Math.min(...values, 1)));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...values, 1))));
  const plotLeft = panel.x + 56;
  const plotTop = panel.y + 36;
  const plotWidth = panel.width - 66;
  const plotHeight = panel.height - 86;
  const plotBottom = plotTop + plotHeight;
  const yOf = (v: number): number => {
    const clamped = Math.min(Math.max(v, 10 ** lo), 10 ** hi);
    return plotBottom - ((Math.log10(clamped) - lo) / (hi - lo)) * plotHeight;
  };
  parts.push(
    `<text x="${panel.x + panel.width / 2}" y="${
      panel.y + 16
    }" text-anchor="middle" class="panel">${escapeXml(panel.title)}</text>`,
    `<text x="${panel.x + panel.width / 2}" y="${
      panel.y + 30
    }" text-anchor="middle" class="hint">${escapeXml(panel.hint)}</text>`,
  );
  for (let e = lo; e <= hi; e++) {
    const y = yOf(10 ** e).toFixed(1);
    parts.push(
      `<line x1="${plotLeft}" y1="${y}" x2="${
        plotLeft + plotWidth
      }" y2="${y}" class="grid"/>`,
      `<text x="${
        plotLeft - 6
      }" y="${y}" dy="0.32em" text-anchor="end" class="tick">${
        formatTick(e)
      }</text>`,
    );
  }
  parts.push(
    `<line x1="${plotLeft}" y1="${plotTop}" x2="${plotLeft}" y2="${plotBottom}" class="axis"/>`,
    `<line x1="${plotLeft}" y1="${plotBottom}" x2="${
      plotLeft + plotWidth
    }" y2="${plotBottom}" class="axis"/>`,
    `<text transform="translate(${panel.x + 14} ${
      plotTop + plotHeight / 2
    }) rotate(-90)" text-anchor="middle" class="label">${
      escapeXml(panel.unit)
    } (log scale)</text>`,
  );
  const groupWidth = plotWidth / Math.max(1, groups.length);
  const barWidth = Math.min(60, (groupWidth * 0.7) / Math.max(1, impls.length));
  groups.forEach((producers, g) => {
    const center = plotLeft + groupWidth * (g + 0.5);
    const start = center - (barWidth * impls.length) / 2;
    impls.forEach((impl, i) => {
      const run = runs.find((r) =>
        r.impl === impl && r.producers === producers
      );
      if (run === undefined) return;
      const value = panel.value(run);
      const top = value > 0 ? yOf(value) : plotBottom;
      const x = start + i * barWidth;
      parts.push(
        `<rect x="${(x + 2).toFixed(1)}" y="${top.toFixed(1)}" width="${
          (barWidth - 4).toFixed(1)
        }" height="${Math.max(0, plotBottom - top).toFixed(1)}" fill="${
          PALETTE[i % PALETTE.length]
        }"><title>${
          escapeXml(
            `${impl}, ${producers} producers: ${
              formatValue(value)
            } ${panel.unit}`,
          )
        }</title></rect>`,
        `<text x="${(x + barWidth / 2).toFixed(1)}" y="${
          (top - 4).toFixed(1)
        }" text-anchor="middle" class="value">${formatValue(value)}</text>`,
      );
    });
    parts.push(
      `<text x="${center.toFixed(1)}" y="${
        plotBottom + 18
      }" text-anchor="middle" class="tick">${producers} producers</text>`,
    );
  });
  return parts.join("\n");
}

/**
 * Renders the chart as a standalone SVG document.
 *
 * @param runs One entry per implementation and producer count.
 * @param options Title, subtitle and size.
 * @returns The SVG text.
 * @throws {RangeError} When the size is not positive.
 */
export function renderChart(
  runs: readonly ChartRun[],
  options: ChartOptions = {},
): string {
  const {
    title = "Sluice benchmark",
    subtitle = "",
    width = 960,
    height = 480,
  } = options;
  if (!(width > 0) || !(height > 0)) {
    throw new RangeError(
      `Cannot render chart: width and height must be > 0, got ${width}x${height}`,
    );
  }
  const impls = [...new Set(runs.map((r) => r.impl))];
  const groups = [...new Set(runs.map((r) => r.producers))].sort((a, b) =>
    a - b
  );
  const top = 56;
  const legendHeight = 28;
  const panelWidth = (width - 40) / 2;
  const panelHeight = height - top - legendHeight;
  const panels: Panel[] = [
    {
      x: 20,
      y: top,
      width: panelWidth,
      height: panelHeight,
      title: "Throughput",
      hint: "tasks/s, higher is better",
      unit: "tasks/s",
      value: (r) => r.throughput_per_s,
    },
    {
      x: 20 + panelWidth,
      y: top,
      width: panelWidth,
      height: panelHeight,
      title: "P95 latency",
      hint: "ms, lower is better",
      unit: "ms",
      value: (r) => r.p95_ms,
    },
  ];
  const legend = impls.map((impl, i) => {
    const x = width / 2 - (impls.length * 130) / 2 + i * 130;
    const y = height - 18;
    return `<rect x="${x}" y="${y - 10}" width="12" height="12" fill="${
      PALETTE[i % PALETTE.length]
    }"/><text x="${x + 18}" y="${y}" class="label">${escapeXml(impl)}</text>`;
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif">`,
    `<title>${escapeXml(title)}</title>`,
    `<style>`,
    `.title{font-size:18px;font-weight:600;fill:#1f2933}`,
    `.subtitle{font-size:12px;fill:#52606d}`,
    `.panel{font-size:14px;font-weight:600;fill:#1f2933}`,
    `.hint{font-size:11px;fill:#7b8794}`,
    `.tick{font-size:11px;fill:#52606d}`,
    `.label{font-size:12px;fill:#323f4b}`,
    `.value{font-size:11px;fill:#1f2933}`,
    `.grid{stroke:#e4e7eb;stroke-width:1}`,
    `.axis{stroke:#7b8794;stroke-width:1}`,
    `</style>`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="26" text-anchor="middle" class="title">${
      escapeXml(title)
    }</text>`,
    `<text x="${width / 2}" y="44" text-anchor="middle" class="subtitle">${
      escapeXml(subtitle)
    }</text>`,
    ...panels.map((p) => renderPanel(p, runs, impls, groups)),
    ...legend,
    `</svg>`,
    ``,
  ].join("\n");
}
