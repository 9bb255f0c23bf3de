/**
 * The real mermaid parser, in node: mermaid needs a DOM (it sanitizes labels
 * with DOMPurify), so a jsdom window is installed on globalThis before
 * mermaid is first imported. Used to prove that exported diagrams (state
 * charts, sequence diagrams) are ones mermaid accepts, not ones that merely
 * look right.
 *
 *   const result = await parseMermaid(text);   // throws on input mermaid refuses
 *   result.diagramType                          // 'stateDiagram', 'sequence', ...
 */

export interface MermaidParseResult {
  diagramType: string;
}

interface MermaidApi {
  parse(text: string, options?: { suppressErrors?: boolean }): Promise<MermaidParseResult | false>;
}

let loading: Promise<MermaidApi> | undefined;

/** Installs a jsdom window once, then imports mermaid (once). */
export function loadMermaid(): Promise<MermaidApi> {
  loading ??= (async () => {
    // jsdom ships no type declarations; a non-literal specifier keeps the import untyped on purpose.
    const jsdomModule = 'jsdom';
    const { JSDOM } = (await import(jsdomModule)) as { JSDOM: new (html: string) => { window: { document: unknown } } };
    const g = globalThis as Record<string, unknown>;
    if (g.window === undefined) {
      const dom = new JSDOM('<!doctype html><html><body></body></html>');
      g.window = dom.window;
      g.document = dom.window.document;
    }
    const { default: mermaid } = (await import('mermaid')) as unknown as { default: MermaidApi & { initialize(c: object): void } };
    mermaid.initialize({ startOnLoad: false });
    return mermaid;
  })();
  return loading;
}

/** Parses `text` with mermaid; resolves with the diagram type, rejects with mermaid's own error on bad input. */
export async function parseMermaid(text: string): Promise<MermaidParseResult> {
  const mermaid = await loadMermaid();
  const result = await mermaid.parse(text);
  if (result === false) throw new Error('mermaid refused the diagram');
  return result;
}

/** A node or an edge as mermaid's state-diagram database holds it (what the renderer would draw). */
export interface MermaidStateData {
  nodes: Array<{ id: string; parentId?: string; label?: string; shape?: string; isGroup?: boolean }>;
  edges: Array<{ start: string; end: string; label?: string }>;
}

/** Parses a state diagram and returns its nodes (with their parents) and edges, for checks on structure, not just syntax. */
export async function mermaidStateData(text: string): Promise<MermaidStateData> {
  const mermaid = (await loadMermaid()) as unknown as {
    mermaidAPI: { getDiagramFromText(text: string): Promise<{ type: string; db: { getData?: () => MermaidStateData } }> };
  };
  const diagram = await mermaid.mermaidAPI.getDiagramFromText(text);
  if (!diagram.db.getData) throw new Error(`not a state diagram: ${diagram.type}`);
  return diagram.db.getData();
}
