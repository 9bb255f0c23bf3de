/**
 * Checking drawings the way their readers will: Mermaid text with the real
 * mermaid parser (test/helpers/mermaid.ts), SVG as XML with jsdom's
 * DOMParser (a parsererror element means it is not well-formed).
 */
import { createRequire } from 'node:module';
import { parseMermaid as parse } from '../helpers/mermaid.ts';

/** Parses a sequence diagram with the real mermaid parser; throws on anything it refuses. */
export async function parseMermaid(text: string): Promise<void> {
  const result = await parse(text);
  if (result.diagramType !== 'sequence') throw new Error(`mermaid read a ${result.diagramType} diagram, not a sequence diagram`);
}

/** The little of the DOM these tests read (the project compiles without lib "dom"). */
export interface XmlElement {
  nodeName: string;
  textContent: string | null;
  getAttribute(name: string): string | null;
}
export interface XmlDocument {
  documentElement: XmlElement;
  getElementsByTagName(name: string): ArrayLike<XmlElement>;
  querySelectorAll(selector: string): Iterable<XmlElement>;
}
interface Window {
  document: unknown;
  DOMParser: new () => { parseFromString(text: string, type: string): XmlDocument };
}

// jsdom ships no types, and this project has no @types/jsdom: load it untyped, describe what is used.
const { JSDOM } = createRequire(import.meta.url)('jsdom') as { JSDOM: new (html: string) => { window: Window } };
const dom = new JSDOM('<!doctype html><html><body></body></html>');
/** Parses SVG as XML; throws with the parser's complaint when it is not well-formed. */
export function parseSvg(svg: string): XmlDocument {
  const doc = new dom.window.DOMParser().parseFromString(svg, 'image/svg+xml');
  const error = doc.getElementsByTagName('parsererror')[0];
  if (error) throw new Error(`SVG is not well-formed XML: ${error.textContent?.slice(0, 300)}`);
  if (doc.documentElement.nodeName !== 'svg') throw new Error(`root element is ${doc.documentElement.nodeName}, not svg`);
  return doc;
}
