/**
 * SVG and XML documents for the chart tests, parsed by jsdom's DOMParser (one
 * window per process, made on first use): only the few DOM members the tests
 * read are typed.
 */

export interface DomElement {
  localName: string;
  namespaceURI: string | null;
  textContent: string | null;
  parentElement: DomElement | null;
  getAttribute(name: string): string | null;
  getElementsByTagName(name: string): ArrayLike<DomElement>;
}

export interface DomDocument {
  documentElement: DomElement;
  getElementById(id: string): DomElement | null;
  getElementsByTagName(name: string): ArrayLike<DomElement>;
}

let parser: { parseFromString(text: string, type: string): DomDocument } | undefined;

/** Parses an SVG (`image/svg+xml`) or an XML document (`application/xml`). */
export async function parseDom(text: string, type: 'image/svg+xml' | 'application/xml'): Promise<DomDocument> {
  if (!parser) {
    // jsdom ships no type declarations; a non-literal specifier keeps the import untyped on purpose.
    const jsdomModule = 'jsdom';
    const { JSDOM } = (await import(jsdomModule)) as { JSDOM: new () => { window: { DOMParser: new () => NonNullable<typeof parser> } } };
    parser = new new JSDOM().window.DOMParser();
  }
  return parser.parseFromString(text, type);
}

/** An element's classes (`class="edge transition loop"` -> ['edge', 'transition', 'loop']). */
export const classesOf = (el: DomElement): string[] => (el.getAttribute('class') ?? '').split(/\s+/).filter((c) => c !== '');
