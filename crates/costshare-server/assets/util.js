// Small helpers for the dashboard: DOM building (text only, never HTML from the
// server), exact decimal money strings (BigInt, never JS numbers), and a
// tolerant reader for the agreement TOML's structure (what the what-if form edits).

const SVG_NS = 'http://www.w3.org/2000/svg';

// el('td', {class: 'n', text: '1,234', data: {party: 'JP'}, onclick: f}, child, ...)
export function el(tag, attrs = {}, ...children) {
  return build(document.createElement(tag), attrs, children);
}

export function svgEl(tag, attrs = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function build(node, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') node.textContent = String(v);
    else if (k === 'class') node.setAttribute('class', v);
    else if (k === 'data') for (const [dk, dv] of Object.entries(v)) node.dataset[dk] = String(dv);
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else if (k === 'style') throw new Error('no inline styles: the CSP forbids them; use app.css');
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

// ---------- money: exact decimal strings ----------

const DEC = /^([+-]?)(\d+)(?:\.(\d+))?$/;

// "1234567.50" -> "1,234,567.50"; anything that is not a plain decimal is shown as it is.
export function money(s) {
  if (s === null || s === undefined) return '';
  const str = String(s);
  const m = DEC.exec(str);
  if (!m) return str;
  return m[1] + m[2].replace(/\B(?=(\d{3})+(?!\d))/g, ',') + (m[3] !== undefined ? '.' + m[3] : '');
}

function toScaled(s, scale) {
  const m = DEC.exec(String(s));
  if (!m) return null;
  const frac = (m[3] || '').padEnd(scale, '0');
  const v = BigInt(m[2] + frac);
  return m[1] === '-' ? -v : v;
}

function scaleOf(s) {
  const m = DEC.exec(String(s));
  return m && m[3] ? m[3].length : 0;
}

function fromScaled(v, scale) {
  const neg = v < 0n;
  let digits = (neg ? -v : v).toString();
  if (scale > 0) {
    digits = digits.padStart(scale + 1, '0');
    digits = digits.slice(0, -scale) + '.' + digits.slice(-scale);
  }
  return (neg ? '-' : '') + digits;
}

// The exact sum of decimal strings (null when one is not a decimal).
export function sumMoney(list) {
  const scale = list.reduce((m, s) => Math.max(m, scaleOf(s)), 0);
  let total = 0n;
  for (const s of list) {
    const v = toScaled(s, scale);
    if (v === null) return null;
    total += v;
  }
  return fromScaled(total, scale);
}

// a - b, exactly (null when one is not a decimal).
export function subMoney(a, b) {
  const m = DEC.exec(String(b));
  if (!m) return null;
  const neg = (m[1] === '-' ? '' : '-') + m[2] + (m[3] !== undefined ? '.' + m[3] : '');
  return sumMoney([a, neg]);
}

// Exact comparison of two decimal strings: -1, 0 or 1 (non-decimals sort last).
export function cmpMoney(a, b) {
  const scale = Math.max(scaleOf(a), scaleOf(b));
  const x = toScaled(a, scale);
  const y = toScaled(b, scale);
  if (x === null || y === null) return x === null ? (y === null ? 0 : 1) : -1;
  return x < y ? -1 : x > y ? 1 : 0;
}

export function isZeroMoney(s) {
  const v = toScaled(s, scaleOf(s));
  return v === 0n;
}

export function signOf(s) {
  const v = toScaled(s, scaleOf(s));
  if (v === null) return 0;
  return v < 0n ? -1 : v > 0n ? 1 : 0;
}

// For chart geometry only (bar lengths), never for shown figures.
export function approx(s) {
  const n = Number(s);
  return Number.isFinite(n) ? n : 0;
}

// ---------- the agreement's structure from its TOML ----------

// Reads what the what-if form needs: parties, and for each category its layers'
// split (party shares, or a key), cap (plain or a fiscal-year schedule),
// cap_units and portion. Tolerant: a line it does not understand is skipped.
export function agreementStructure(toml) {
  const out = { parties: [], categories: [] };
  let cat = null;
  let layer = null;
  let section = null;
  for (const raw of String(toml).split(/\r?\n/)) {
    const line = stripComment(raw).trim();
    if (!line) continue;
    let m = /^\[\[\s*categories\.([A-Za-z0-9_-]+|"[^"]*")\.layers\s*\]\]$/.exec(line);
    if (m) {
      const id = unquote(m[1]);
      cat = out.categories.find((c) => c.id === id);
      if (!cat) {
        cat = { id, name: id, layers: [] };
        out.categories.push(cat);
      }
      layer = { split: null, key: null, cap: null, capSchedule: null, capUnits: null, portion: null, period: null };
      cat.layers.push(layer);
      section = 'layer';
      continue;
    }
    m = /^\[\s*([^\]]+?)\s*\]$/.exec(line);
    if (m) {
      layer = null;
      const parts = m[1].split('.').map((p) => unquote(p.trim()));
      if (parts[0] === 'categories' && parts.length === 2) {
        cat = out.categories.find((c) => c.id === parts[1]);
        if (!cat) {
          cat = { id: parts[1], name: parts[1], layers: [] };
          out.categories.push(cat);
        }
        section = 'category';
      } else if (parts[0] === 'parties' && parts.length === 2) {
        if (!out.parties.includes(parts[1])) out.parties.push(parts[1]);
        section = 'party';
        cat = null;
      } else {
        section = null;
        cat = null;
      }
      continue;
    }
    m = /^([A-Za-z0-9_-]+|"[^"]*")\s*=\s*(.+)$/.exec(line);
    if (!m) continue;
    const key = unquote(m[1]);
    const value = parseValue(m[2]);
    if (value === undefined) continue;
    if (section === 'category' && cat && key === 'name' && typeof value === 'string') cat.name = value;
    if (section === 'layer' && layer) {
      if (key === 'split' && value && typeof value === 'object') {
        if (typeof value.key === 'string') layer.key = value.key;
        else layer.split = value;
      } else if (key === 'cap') {
        if (value && typeof value === 'object') layer.capSchedule = value;
        else layer.cap = String(value);
      } else if (key === 'cap_units') layer.capUnits = String(value);
      else if (key === 'portion') layer.portion = String(value);
      else if (key === 'period') layer.period = String(value);
    }
  }
  return out;
}

function unquote(s) {
  return s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1) : s;
}

function stripComment(line) {
  let inStr = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '"' && line[i - 1] !== '\\') inStr = !inStr;
    else if (c === '#' && !inStr) return line.slice(0, i);
  }
  return line;
}

// A string, a number, or an inline table of strings and numbers; undefined otherwise.
function parseValue(text) {
  const t = text.trim();
  if (t.startsWith('"')) {
    const m = /^"((?:[^"\\]|\\.)*)"$/.exec(t);
    return m ? m[1].replace(/\\(.)/g, '$1') : undefined;
  }
  if (/^[+-]?[0-9][0-9_]*(\.[0-9_]+)?$/.test(t)) return t.replace(/_/g, '');
  if (t.startsWith('{') && t.endsWith('}')) {
    const obj = {};
    const body = t.slice(1, -1);
    const re = /\s*([A-Za-z0-9_-]+|"[^"]*")\s*=\s*("(?:[^"\\]|\\.)*"|[+-]?[0-9][0-9_.]*)\s*(,|$)/y;
    let pos = 0;
    while (pos < body.length) {
      re.lastIndex = pos;
      const m = re.exec(body);
      if (!m) {
        if (body.slice(pos).trim() === '') break;
        return undefined;
      }
      const v = m[2].startsWith('"') ? m[2].slice(1, -1) : m[2].replace(/_/g, '');
      obj[unquote(m[1])] = v;
      pos = re.lastIndex;
    }
    return obj;
  }
  if (t === 'true' || t === 'false') return t;
  return undefined;
}
