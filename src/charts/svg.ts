/**
 * DOT to SVG, locally: Graphviz compiled to WebAssembly (@viz-js/viz), no
 * network, no Graphviz install. One Graphviz instance per process, made on
 * first use. The SVG keeps the ids the DOT gives (see ./dot.ts).
 */
import { instance, type Viz } from '@viz-js/viz';

let viz: Promise<Viz> | undefined;

export interface RenderedSvg {
  svg: string;
  /** What Graphviz warned about (a chart should render without any). */
  warnings: string[];
}

/** Renders DOT with Graphviz's `dot` layout; throws with Graphviz's messages when it cannot. */
export async function renderDot(dot: string): Promise<RenderedSvg> {
  viz ??= instance();
  const result = (await viz).render(dot, { format: 'svg', engine: 'dot' });
  const messages = result.errors.map((e) => `${e.level ?? 'error'}: ${e.message.trim()}`);
  if (result.status !== 'success') throw new Error(`Graphviz could not render the chart: ${messages.join('; ')}`);
  return { svg: result.output, warnings: messages };
}

export async function toSvg(dot: string): Promise<string> {
  return (await renderDot(dot)).svg;
}
